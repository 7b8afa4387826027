"""Memory must not grow with the number of training steps (issue: a per-step leak).

Live tensors after ``gc.collect()`` are counted: exact, and stable on a shared machine where
resident memory is not. Before the fix, every training step of a latent variant left its
T per-step h_{t-1} and phi_z(z_t) tensors alive (a reference cycle through the autograd graph).
"""

import pytest
import torch
from conftest import TINY_MODEL, tiny_config

from vrnn_lightning.estimators import elbo, importance_estimates, smc
from vrnn_lightning.memory import MemoryProbe, live_tensors
from vrnn_lightning.model import VRNN
from vrnn_lightning.training import train


def _train_steps(model, optimiser, x, mask, n):
    for _ in range(n):
        terms = model(x, mask)
        loss = -(terms.log_px - terms.kl).sum(1).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()


@pytest.mark.slow  # 100 training steps per case, ~1 min in all
@pytest.mark.parametrize(
    "variant, observation",
    [(v, "audio") for v in ("rnn_gauss", "rnn_gmm", "vrnn_gauss", "vrnn_gmm", "vrnn_i_gauss")]
    + [("vrnn_i_gmm", "audio"), ("vrnn_gmm", "strokes"), ("rnn_gmm", "strokes")],
)
def test_training_steps_leave_no_tensor_behind(variant, observation):
    torch.manual_seed(0)
    x_dim = 3 if observation == "strokes" else 10
    model = VRNN(variant, x_dim=x_dim, observation=observation, **TINY_MODEL)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(4, 12, x_dim)
    if observation == "strokes":
        x[..., 0] = (x[..., 0] > 0).float()
    mask = torch.ones(4, 12, dtype=torch.bool)
    mask[1, 9:] = False
    _train_steps(model, optimiser, x, mask, 5)  # Adam's state exists from here on
    before = live_tensors()
    _train_steps(model, optimiser, x, mask, 100)
    # a leak of one tensor per step and frame would be 100 x 12 x 2 here
    assert live_tensors() - before <= 0


def test_a_step_whose_backward_never_runs_leaves_nothing_behind():
    # a non-finite loss is skipped without backward: its graph must still be freed
    model = VRNN("vrnn_gmm", x_dim=10, **TINY_MODEL)
    x = torch.randn(4, 12, 10)

    def forward_only(n):
        for _ in range(n):
            terms = model(x)
            -(terms.log_px - terms.kl).sum()  # built, never differentiated

    forward_only(1)
    before = live_tensors()
    forward_only(50)
    assert live_tensors() - before <= 0


def test_evaluation_and_generation_leave_nothing_behind():
    model = VRNN("vrnn_gmm", x_dim=10, **TINY_MODEL).eval()
    x = torch.randn(4, 12, 10)
    with torch.no_grad():
        importance_estimates(model, x, k=8)
        elbo(model, x)
        smc(model, x, k=8)
        model.generate(2, 6)
        before = live_tensors()
        for _ in range(30):
            importance_estimates(model, x, k=8)
            elbo(model, x)
            smc(model, x, k=8)
            model.generate(2, 6)
    assert live_tensors() - before <= 0


@pytest.mark.slow
def test_a_whole_fit_holds_the_same_tensors_at_step_100_and_step_400(tmp_path):
    # the real command's loop: Lightning, the module's noise generator, metrics, logging,
    # checkpoints and the sample callback, with validation every second epoch (~45 steps)
    cfg = tiny_config(
        f"data.cache_dir={tmp_path / 'cache'}",
        f"out_dir={tmp_path / 'run'}",
        "model.variant=vrnn_gmm",
        "trainer.max_steps=400",
        "trainer.max_epochs=-1",
        "trainer.check_val_every_n_epoch=2",
        "trainer.early_stopping_patience=null",
        "sample.every_n_validations=2",
        "sample.n=1",
        "sample.steps=4",
        "logger.log_every_n_steps=10",
    )
    probe = MemoryProbe(every=50, count_tensors_at=(100, 400))
    train(cfg, extra_callbacks=[probe])
    assert set(probe.tensors) == {100, 400}
    assert probe.tensors[400] - probe.tensors[100] <= 0, probe.tensors


def test_figures_are_drawn_outside_the_calling_process(tmp_path):
    import os

    from vrnn_lightning import plots
    from vrnn_lightning.figure_worker import FigureWorker

    worker = FigureWorker()
    try:
        worker("plot_waveforms", [[0.0, 0.5, -0.5, 0.0]], 8000, tmp_path / "w.png", title="t")
        assert (tmp_path / "w.png").stat().st_size > 0
        assert worker._proc is not None and worker._proc.pid != os.getpid()
        with pytest.raises(RuntimeError, match="no waveforms to plot"):
            worker("plot_waveforms", [], 8000, tmp_path / "x.png")
        assert plots.plot_waveforms  # the same functions, by name
    finally:
        worker.close()


@pytest.mark.slow
def test_writing_samples_at_every_validation_does_not_grow_resident_memory(tmp_path):
    # Before the figure process, drawing the sample figures fragmented the C heap: ~3 MB more
    # resident memory at every validation (76 MB over these 20), with no Python object left.
    import lightning as L

    from vrnn_lightning.memory import resident_mb

    class Probe(L.Callback):
        mb: dict = {}

        def on_train_epoch_start(self, trainer, pl_module):
            if trainer.current_epoch in (4, 24):
                self.mb[trainer.current_epoch] = resident_mb()

    cfg = tiny_config(
        f"data.cache_dir={tmp_path / 'cache'}",
        f"out_dir={tmp_path / 'run'}",
        "model.variant=rnn_gmm",
        "trainer.max_epochs=25",
        "trainer.early_stopping_patience=null",
        "sample.every_n_validations=1",
        "sample.n=2",
        "sample.steps=40",
    )
    probe = Probe()
    train(cfg, extra_callbacks=[probe])
    assert len(list((tmp_path / "run" / "samples").glob("*/waveforms.png"))) == 25
    assert probe.mb[24] - probe.mb[4] < 20, probe.mb
