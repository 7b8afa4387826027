"""VRNNModule: the objective's options and what happens on a non-finite loss."""

from pathlib import Path

import lightning as L
import pytest
import torch
from conftest import tiny_config
from omegaconf import OmegaConf
from torch.utils.data import DataLoader

from vrnn_lightning import estimators
from vrnn_lightning.config import ConfigError, load_config
from vrnn_lightning.module import NonFiniteLossError, VRNNModule, clip_threshold

# conf/debug.yaml with what the tests below compute with: a Gaussian VRNN, z_dim 2 (the
# free-bits arithmetic), 5-sample frames, batches of 2 (the clip threshold)
TINY = ["model.variant=vrnn_gauss", "model.z_dim=2", "data.frame_size=5", "data.batch_size=2"]


def module(*overrides: str) -> VRNNModule:
    cfg = tiny_config(*TINY, *overrides)
    data = cfg.data
    return VRNNModule(
        cfg.model,
        cfg.optim,
        observation="audio",
        x_dim=5,
        batch_size=data.batch_size,
        seq_len=data.seq_len,
    )


def batches(n: int, poison_from: int | None = None):
    out = []
    for i in range(n):
        x = torch.randn(2, 6, 5)
        if poison_from is not None and i >= poison_from:
            x[0, 2, 1] = float("inf")
        out.append({"x": x, "mask": torch.ones(2, 6, dtype=torch.bool)})
    return out


def trainer(**kw) -> L.Trainer:
    return L.Trainer(
        accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, **kw,
    )  # fmt: skip


def test_non_finite_steps_are_skipped_then_training_stops_with_a_message():
    data = batches(6, poison_from=2)
    torch.manual_seed(0)
    good = module("optim.max_nonfinite_steps=3")
    trainer(max_epochs=1).fit(good, DataLoader(data[:2], batch_size=None))
    torch.manual_seed(0)
    mod = module("optim.max_nonfinite_steps=3")
    with pytest.raises(NonFiniteLossError, match="3 consecutive training steps"):
        trainer(max_epochs=1).fit(mod, DataLoader(data, batch_size=None))
    assert mod.nonfinite_total == 3
    # the two good steps were taken; the bad ones changed no weight
    for (name, p), q in zip(mod.named_parameters(), good.parameters(), strict=True):
        torch.testing.assert_close(p, q, msg=name)


def test_a_few_non_finite_steps_are_survived_and_counted():
    mod = module("optim.max_nonfinite_steps=3")
    data = batches(6)
    data[3]["x"][1, 0, 0] = float("nan")
    trainer(max_epochs=1).fit(mod, DataLoader(data, batch_size=None))
    assert mod.nonfinite_total == 1
    assert all(torch.isfinite(p).all() for p in mod.parameters())


def test_the_loss_is_minus_the_elbo_per_sequence_with_annealing_and_free_bits():
    x = torch.randn(3, 6, 5)
    mask = torch.ones(3, 6, dtype=torch.bool)
    mask[0, 4:] = False
    plain = module()
    terms = plain.model(x, mask)
    elbo = (terms.log_px - terms.kl).sum(1)
    torch.testing.assert_close(plain.loss(terms, mask), -elbo.mean())
    # before any step, annealing over 4 steps weighs the KL by 1/4
    annealed = module("optim.kl_anneal_steps=4")
    annealed.model.load_state_dict(plain.model.state_dict())
    expected = -(terms.log_px - terms.kl / 4).sum(1).mean()
    torch.testing.assert_close(annealed.loss(terms, mask), expected)
    # a floor far above the KL: every valid (step, dim) pays exactly the floor
    floored = module("optim.free_bits=100")
    n_valid = mask.sum(1).float()
    expected = (-terms.log_px.sum(1) + 100 * 2 * n_valid).mean()  # z_dim = 2
    torch.testing.assert_close(floored.loss(terms, mask), expected)


def test_max_norm_holds_after_every_step():
    mod = module("optim.max_norm=0.05", "optim.lr=0.5")
    trainer(max_steps=3, limit_val_batches=0).fit(mod, DataLoader(batches(3), batch_size=None))
    for sub in mod.model.modules():
        if isinstance(sub, torch.nn.Linear):
            for block in sub.weight.split(list(getattr(sub, "in_blocks", (sub.in_features,))), 1):
                assert block.norm(dim=1).max() <= 0.05 + 1e-6


def test_a_module_built_from_a_datamodule_trains_and_its_checkpoint_rebuilds_it(tmp_path):
    # what a notebook does: no run config, a plain Trainer, Lightning's own checkpoint loading
    from vrnn_lightning.data import SyntheticHandwriting

    dm = SyntheticHandwriting(
        cache_dir=str(tmp_path), synthetic_sequences=12, seq_len=8, batch_size=4
    )
    mod = VRNNModule.for_data(dm, {"variant": "vrnn_gmm", "h_dim": 8, "z_dim": 2}, {"lr": 0.01})
    assert (mod.observation, mod.x_dim, mod.batch_size) == ("strokes", 3, 4)
    run = trainer(max_steps=2, limit_val_batches=1, default_root_dir=str(tmp_path))
    run.fit(mod, datamodule=dm)
    assert run.global_step == 2
    run.save_checkpoint(tmp_path / "m.ckpt")
    back = VRNNModule.load_from_checkpoint(tmp_path / "m.ckpt")
    assert back.model.observation == "strokes" and back.optim_cfg.lr == 0.01
    for (name, p), q in zip(mod.state_dict().items(), back.state_dict().values(), strict=True):
        torch.testing.assert_close(p, q, msg=name)


def test_unknown_settings_name_their_key():
    from vrnn_lightning.config import ConfigError

    with pytest.raises(ConfigError, match="optim.lrr"):
        VRNNModule(optim={"lrr": 1}, observation="audio", x_dim=5, batch_size=2)
    with pytest.raises(ValueError, match="model.variant"):
        VRNNModule({"variant": "vrnn"}, observation="audio", x_dim=5, batch_size=2)


def test_a_checkpoint_written_before_the_explicit_arguments_still_loads(tmp_path):
    # the module used to hold the whole run config and the corpus kind as its two arguments
    from vrnn_lightning.checkpoint import load_checkpoint

    cfg = tiny_config(*TINY, "seed=7", "data.dataset=synthetic_speech")
    new = module()
    legacy = {
        "state_dict": new.state_dict(),
        "hyper_parameters": {"config": OmegaConf.to_container(cfg), "data_kind": "audio"},
    }
    torch.save(legacy, tmp_path / "old.ckpt")
    # (a checkpoint.Trained: the model and what it was trained on, and the run config)
    loaded, run = load_checkpoint(tmp_path / "old.ckpt", [])
    data = loaded.data
    assert (data.observation, data.x_dim, run.data.batch_size, run.seed) == ("audio", 5, 2, 7)
    assert run.model.variant == "vrnn_gauss" and run.data.frame_size == 5
    old_model = new.model.state_dict()
    for (name, p), q in zip(old_model.items(), loaded.model.state_dict().values(), strict=True):
        torch.testing.assert_close(p, q, msg=name)


# the original's clipping (gradients / batch size, norm 5) on each dataset's own loss scale
PAPER_CLIP = {
    "blizzard.yaml": 5 * 128 * 40,  # per-frame mean loss: 25,600 here
    "accent.yaml": 5 * 128 * 40,
    "timit.yaml": 5 * 64,  # per-sequence sum: 320
    "onomatopoeia.yaml": 5 * 64,
    "iamondb.yaml": 5 * 64,
}


@pytest.mark.parametrize("name", sorted(PAPER_CLIP))
def test_each_paper_config_clips_where_the_original_did(name):
    cfg = load_config(Path(__file__).resolve().parents[1] / "conf" / name)
    assert clip_threshold(cfg.optim, cfg.data) == PAPER_CLIP[name]


def test_the_clip_threshold_follows_its_scale_and_is_applied():
    none = tiny_config(*TINY, "optim.grad_clip_scale=none")
    assert clip_threshold(none.optim, none.data) == 5.0
    mod = module("optim.grad_clip_scale=batch_frames", "data.seq_len=3", "optim.grad_clip=0.5")
    assert clip_threshold(mod.optim_cfg, mod) == 0.5 * 2 * 3
    assert clip_threshold(mod.optim_cfg, mod, world_size=4) == 0.5 * 8 * 3
    off = tiny_config(*TINY, "optim.grad_clip=0")
    assert clip_threshold(off.optim, off.data) is None
    for p in mod.parameters():
        p.grad = torch.full_like(p, 10.0)
    mod.trainer = trainer()  # one process
    mod.configure_gradient_clipping(None)
    norm = torch.nn.utils.get_total_norm([p.grad for p in mod.parameters()])
    torch.testing.assert_close(norm, torch.tensor(3.0))
    with pytest.raises(ConfigError, match="optim.grad_clip_scale"):
        module("optim.grad_clip_scale=frames")


@pytest.mark.parametrize("objective", ["iwae", "fivo"])
def test_iwae_and_fivo_objectives_are_their_bounds_and_train_every_parameter(objective):
    mod = module(f"optim.objective={objective}", "optim.particles=3")
    x, mask = torch.randn(2, 6, 5), torch.ones(2, 6, dtype=torch.bool)
    mask[1, 4:] = False
    mod._reseed(7)
    loss = mod.training_step({"x": x, "mask": mask}, 0)
    # the loss is minus the estimator's bound on the same draws
    mod._reseed(7)
    gen = mod._noise(x.device)
    with torch.no_grad():
        if objective == "iwae":
            bound = estimators.iwae(mod.model, x, mask, 3, gen)
        else:
            bound = estimators.smc(mod.model, x, mask, 3, generator=gen)
    torch.testing.assert_close(loss.detach(), -bound.per_sequence.mean())
    loss.backward()
    missing = [n for n, p in mod.named_parameters() if p.grad is None or not p.grad.any()]
    assert not missing, f"no gradient reaches {missing}"


def test_fivo_with_one_particle_is_the_single_sample_bound_in_value_and_gradient():
    """K = 1: nothing to resample; FIVO's loss and gradient are the ELBO's with sampled KL
    (log p(x|z) + log p(z) - log q(z)) on the same noise."""
    x = torch.randn(2, 6, 5)
    mask = torch.ones(2, 6, dtype=torch.bool)
    fivo, elbo = module("optim.objective=fivo", "optim.particles=1"), module()
    elbo.model.load_state_dict(fivo.model.state_dict())
    noise = torch.randn(2, 6, 2)
    value = estimators.smc(fivo.model, x, mask, 1, noise=noise).per_sequence.mean()
    (-value).backward()
    reference = elbo.model(x, mask, noise=noise).log_weight.sum(1).mean()
    (-reference).backward()
    torch.testing.assert_close(value, reference)
    for (name, p), q in zip(fivo.model.named_parameters(), elbo.model.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, atol=1e-5, rtol=1e-4, msg=name)


def test_validation_reports_the_elbo_and_the_objective():
    mod = module("optim.objective=fivo", "optim.particles=2")
    logged = {}
    mod.log = lambda name, value, **kw: logged.__setitem__(name, float(value))
    mod.on_validation_epoch_start()
    for batch in batches(2):
        with torch.no_grad():
            mod.validation_step(batch, 0)
    mod.on_validation_epoch_end()
    assert {"val/elbo", "val/fivo"} <= set(logged)
    assert logged["val/fivo"] != logged["val/elbo"]


@pytest.mark.parametrize(
    "override,named",
    [
        ("optim.objective=vimco", "optim.objective"),
        ("optim.particles=0", "optim.particles"),
        ("optim.kl_anneal_steps=100", "optim.kl_anneal_steps"),
    ],
)
def test_bad_objective_settings_name_the_key(override, named):
    with pytest.raises(ConfigError, match=named):
        tiny_config(*TINY, "optim.objective=iwae", override)


def test_training_metrics_are_logged_on_the_steps_the_loggers_write(tmp_path):
    # the loss every step (the progress bar shows it); the rest only on logging steps
    from lightning.pytorch.loggers import CSVLogger

    mod = module()
    calls = []
    log = mod.log
    mod.log = lambda name, *a, **k: calls.append((mod.global_step, name)) or log(name, *a, **k)
    L.Trainer(
        accelerator="cpu", logger=CSVLogger(tmp_path), enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, max_steps=4,
        limit_val_batches=0, log_every_n_steps=2,
    ).fit(mod, DataLoader(batches(4), batch_size=None))  # fmt: skip
    assert [s for s, name in calls if name == "train/loss"] == [0, 1, 2, 3]
    assert [s for s, name in calls if name == "train/elbo"] == [1, 3]
    rows = next(tmp_path.glob("**/metrics.csv")).read_text().splitlines()
    header = rows[0].split(",")
    assert {"train/loss", "train/elbo", "train/kl", "train/log_px"} <= set(header)
    written = [dict(zip(header, r.split(","), strict=True)) for r in rows[1:]]
    assert [int(r["step"]) for r in written if r["train/elbo"]] == [1, 3]


@pytest.mark.parametrize("objective", ["iwae", "fivo"])
def test_validation_scores_the_objective_within_eval_memory_gb(objective):
    """Validation runs the bound without gradients over whole validation sequences: it keeps
    to eval.memory_gb as vrnn-eval does (here a budget of one row: one sample at a time for
    IWAE, one sequence's particles at a time for SMC)."""

    def validate(mod):
        passes, steps = [], set()  # rows of each forward pass; rows of SMC's steps
        mod.model.register_forward_hook(lambda m, args, out: passes.append(out.log_px.shape[0]))
        step = mod.model.step
        mod.model.step = lambda x_t, *a, **kw: steps.add(x_t.shape[0]) or step(x_t, *a, **kw)
        mod.on_validation_epoch_start()
        with torch.no_grad():
            mod.validation_step(batches(1)[0], 0)
        return mod.val_objective.compute(), passes, steps

    mod = module(f"optim.objective={objective}", "optim.particles=3")
    whole, passes, steps = validate(mod)
    # the ELBO's pass of 2 rows, then IWAE's of 2 x 3 or SMC's steps of 2 x 3 rows
    assert (passes, steps) == (([2, 6], set()) if objective == "iwae" else ([2], {6}))
    cfg = OmegaConf.to_container(tiny_config(*TINY, "eval.memory_gb=1e-9"))
    bounded = VRNNModule(
        cfg["model"], cfg["optim"] | {"objective": objective, "particles": 3},
        observation="audio", x_dim=5, batch_size=2, run_config=cfg,
    )  # fmt: skip
    bounded.model.load_state_dict(mod.model.state_dict())
    split, passes, steps = validate(bounded)
    # IWAE: a sequence at a time, a sample at a time; SMC: a sequence's 3 particles at a time
    assert (passes, steps) == (([2] + [1] * 6, set()) if objective == "iwae" else ([2], {3}))
    assert torch.isfinite(split) and abs(split - whole) < 0.2 * abs(whole)
