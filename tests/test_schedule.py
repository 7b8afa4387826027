"""The training recipes of the later anchors: the learning-rate schedule (optim.schedule) and
KL annealing from a starting weight, each checked against its curve, step by step."""

from __future__ import annotations

import csv
import math
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from conftest import tiny_config
from lightning.pytorch.callbacks import Callback, LearningRateMonitor
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader

from vrnn_lightning import schedule
from vrnn_lightning.config import ConfigError
from vrnn_lightning.module import VRNNModule

TINY = ["model.variant=vrnn_gauss", "model.z_dim=2", "data.frame_size=5", "data.batch_size=2"]
LR = 1e-3


def module(*overrides: str) -> VRNNModule:
    cfg = tiny_config(*TINY, f"optim.lr={LR}", *overrides)
    return VRNNModule(cfg.model, cfg.optim, observation="audio", x_dim=5, batch_size=2, seq_len=6)


def batches(n: int):
    torch.manual_seed(0)
    return [
        {"x": torch.randn(2, 6, 5), "mask": torch.ones(2, 6, dtype=torch.bool)} for _ in range(n)
    ]


class Recorder(Callback):
    """What each optimiser step used: the lr of the optimiser and the module's KL weight."""

    def __init__(self):
        self.lr, self.kl, self.epochs = [], [], []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.lr.append(trainer.optimizers[0].param_groups[0]["lr"])
        self.kl.append(pl_module.kl_weight())
        self.epochs.append(trainer.current_epoch)


def fit(mod, n_batches: int, tmp_path=None, **kw) -> Recorder:
    recorder = Recorder()
    callbacks = [recorder]
    logger = False
    if tmp_path is not None:
        callbacks.append(LearningRateMonitor(logging_interval="step"))
        logger = CSVLogger(tmp_path, name="lr")
    L.Trainer(
        accelerator="cpu", logger=logger, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, limit_val_batches=0, callbacks=callbacks,
        log_every_n_steps=1, **kw,
    ).fit(mod, DataLoader(batches(n_batches), batch_size=None))  # fmt: skip
    return recorder


def test_cosine_with_warm_up_to_a_floor_step_by_step(tmp_path):
    floor, warmup, length = 1e-4, 3, 10
    mod = module("optim.schedule=cosine", f"optim.warmup={warmup}", f"optim.lr_floor={floor}",
                 f"optim.schedule_length={length}")  # fmt: skip
    recorder = fit(mod, 12, tmp_path, max_steps=12)
    expected = [
        LR * (n + 1) / warmup
        if n < warmup
        else floor + (LR - floor) * 0.5 * (1 + math.cos(math.pi * min(1, (n - warmup) / 7)))
        for n in range(12)
    ]
    assert recorder.lr == pytest.approx(expected, rel=1e-6)
    assert recorder.lr[-1] == pytest.approx(floor) and max(recorder.lr) == pytest.approx(LR)
    # LearningRateMonitor logs the same curve
    [metrics] = tmp_path.glob("lr/version_*/metrics.csv")
    rows = [r for r in csv.DictReader(metrics.open()) if r.get("lr-Adam")]
    logged = [float(r["lr-Adam"]) for r in rows]
    assert logged == pytest.approx(expected, rel=1e-6)


def test_cosine_without_a_length_spans_the_run():
    recorder = fit(module("optim.schedule=cosine"), 8, max_steps=8)
    expected = [LR * 0.5 * (1 + math.cos(math.pi * n / 8)) for n in range(8)]
    assert recorder.lr == pytest.approx(expected, rel=1e-6)


def test_exponential_decay_after_n_epochs_with_warm_up():
    mod = module("optim.schedule=exponential", "optim.schedule_interval=epoch",
                 "optim.warmup=2", "optim.decay_after=3", "optim.decay_rate=0.5")  # fmt: skip
    recorder = fit(mod, 2, max_epochs=6)  # 2 steps per epoch
    per_epoch = [LR * min(1, (e + 1) / 2) * 0.5 ** max(0, e - 3) for e in range(6)]
    assert recorder.lr == pytest.approx([per_epoch[e] for e in recorder.epochs], rel=1e-6)
    assert recorder.epochs == [e for e in range(6) for _ in range(2)]


def test_exponential_decay_after_n_steps():
    mod = module("optim.schedule=exponential", "optim.decay_after=2", "optim.decay_rate=0.9")
    recorder = fit(mod, 6, max_steps=6)
    assert recorder.lr == pytest.approx([LR * 0.9 ** max(0, n - 2) for n in range(6)], rel=1e-6)


def test_no_schedule_keeps_the_papers_constant_lr():
    mod = module()
    recorder = fit(mod, 3, max_steps=3)
    assert recorder.lr == [LR] * 3
    assert recorder.kl == [1.0] * 3


def test_kl_weight_rises_linearly_from_its_start():
    recorder = fit(module("optim.kl_anneal_start=0.2", "optim.kl_anneal_steps=4"), 6, max_steps=6)
    assert recorder.kl == pytest.approx([0.4, 0.6, 0.8, 1.0, 1.0, 1.0])
    # Dai et al.'s 0.2 + 5e-5 per step is start 0.2 over 16,000 steps
    weights = [schedule.kl_weight(n, 0.2, 16_000) for n in (0, 1, 9_999, 15_999, 20_000)]
    assert weights == pytest.approx([0.2 + 5e-5, 0.2 + 1e-4, 0.7, 1.0, 1.0])


def test_kl_weight_from_zero_is_the_old_warm_up():
    recorder = fit(module("optim.kl_anneal_steps=4"), 5, max_steps=5)
    assert recorder.kl == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0])


@pytest.mark.parametrize(
    "overrides,named",
    [
        (["optim.schedule=linear"], "optim.schedule"),
        (["optim.schedule_interval=batch"], "optim.schedule_interval"),
        (["optim.decay_rate=0"], "optim.decay_rate"),
        (["optim.warmup=-1"], "optim.warmup"),
        (["optim.schedule=cosine", "optim.lr_floor=1"], "optim.lr_floor"),
        (["optim.kl_anneal_start=0.2"], "optim.kl_anneal_start"),
        (["optim.kl_anneal_start=1.5", "optim.kl_anneal_steps=5"], "optim.kl_anneal_start"),
    ],
)
def test_bad_schedule_settings_name_the_key(overrides, named):
    with pytest.raises(ConfigError, match=named):
        tiny_config(*overrides)


def test_cosine_over_an_endless_run_asks_for_a_length():
    optim = tiny_config("optim.schedule=cosine").optim
    endless = SimpleNamespace(max_epochs=-1, estimated_stepping_batches=float("inf"))
    with pytest.raises(ConfigError, match="optim.schedule_length"):
        schedule.schedule_length(optim, endless)


def test_a_resumed_run_continues_the_curve(tmp_path):
    overrides = ("optim.schedule=cosine", "optim.warmup=2", "optim.schedule_length=8")
    whole = fit(module(*overrides), 8, max_steps=8).lr
    first = L.Trainer(
        accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, limit_val_batches=0, max_steps=4,
    )  # fmt: skip
    first.fit(module(*overrides), DataLoader(batches(8), batch_size=None))
    first.save_checkpoint(tmp_path / "half.ckpt")
    rest = Recorder()
    L.Trainer(
        accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, limit_val_batches=0, max_steps=8, callbacks=[rest],
    ).fit(
        module(*overrides), DataLoader(batches(8), batch_size=None),
        ckpt_path=tmp_path / "half.ckpt", weights_only=True,  # as vrnn-fit resumes
    )  # fmt: skip
    assert rest.lr == pytest.approx(whole[4:], rel=1e-6)


def test_vrnn_fit_trains_with_a_schedule_and_logs_the_lr(tmp_path):
    from conftest import tiny

    from vrnn_lightning import fit as fit_command

    run = tmp_path / "run"
    args = tiny(tmp_path, f"out_dir={run}", "optim.schedule=cosine", "optim.warmup=2",
                "optim.lr_floor=1e-5", "optim.kl_anneal_start=0.2", "optim.kl_anneal_steps=3",
                "trainer.max_epochs=1", "trainer.limit_train_batches=4")  # fmt: skip
    assert fit_command.main(args) == 0
    [metrics] = run.glob("csv/version_*/metrics.csv")
    rows = list(csv.DictReader(metrics.open()))
    lrs = [float(r["lr-Adam"]) for r in rows if r.get("lr-Adam")]
    kls = [float(r["train/kl_weight"]) for r in rows if r.get("train/kl_weight")]
    assert lrs[:2] == pytest.approx([LR / 2, LR]) and lrs[-1] < LR
    assert kls[:3] == pytest.approx([0.2 + 0.8 / 3, 0.2 + 1.6 / 3, 1.0])
