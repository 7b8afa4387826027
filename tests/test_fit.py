"""vrnn-fit: configs, errors, resume after a kill, DDP on CPU, bf16-mixed."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import REPO, tiny

from vrnn_lightning.config import load_config
from vrnn_lightning.fit import main as fit_main

CONFIGS = sorted((REPO / "conf").glob("*.yaml"))


def run_cli(args: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vrnn_lightning.fit", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_config_loads_against_the_schema(path):
    cfg = load_config(path)
    assert cfg.name and cfg.model.variant and cfg.data.dataset
    assert path.read_text().startswith("#"), "each config starts with a comment saying what it is"
    assert "vrnn-fit --config conf/" + path.name in path.read_text()


@pytest.mark.parametrize(
    "override,expected",
    [
        ("model.zdim=3", "model.zdim"),
        ("model.z_dim=three", "model.z_dim"),
        ("model.variant=vrnn_big", "model.variant"),
        ("optim.lr", "key=value"),
    ],
)
def test_bad_overrides_exit_2_naming_the_key(override, expected, capsys):
    assert fit_main(["--config", "conf/demo.yaml", override]) == 2
    err = capsys.readouterr().err
    assert expected in err


def test_a_typo_in_a_yaml_file_names_the_file_and_key(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  h_dimm: 10\n")
    assert fit_main(["--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "h_dimm" in err


def _final_state(out_dir: Path) -> tuple[dict, float]:
    ckpt = torch.load(out_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    elbo = [v for k, v in ckpt["callbacks"].items() if k.startswith("ModelCheckpoint")][0][
        "current_score"
    ]
    return ckpt["state_dict"], float(elbo), ckpt["epoch"], ckpt["global_step"]


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_same_weights_and_metrics(tmp_path):
    epochs = ["trainer.max_epochs=4", "trainer.early_stopping_patience=null"]
    straight = tmp_path / "straight"
    assert fit_main(tiny(tmp_path, f"out_dir={straight}", *epochs)) == 0

    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "vrnn_lightning.fit", *tiny(tmp_path, f"out_dir={killed}", *epochs)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    last = killed / "checkpoints" / "last.ckpt"
    deadline = time.time() + 240
    while not last.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    killed_epoch = torch.load(last, map_location="cpu", weights_only=False)["epoch"]
    assert killed_epoch < 3, "the kill must land before the last epoch"

    # a fresh start in the same folder is refused: it would overwrite the checkpoints
    assert fit_main(tiny(tmp_path, f"out_dir={killed}", "ckpt_path=null", *epochs)) == 2
    # the same command resumes (ckpt_path=auto)
    assert fit_main(tiny(tmp_path, f"out_dir={killed}", *epochs)) == 0

    ref_weights, ref_elbo, ref_epoch, ref_step = _final_state(straight)
    weights, elbo, epoch, step = _final_state(killed)
    assert (epoch, step) == (ref_epoch, ref_step)
    assert elbo == pytest.approx(ref_elbo, rel=1e-6)
    for name, value in ref_weights.items():
        torch.testing.assert_close(weights[name], value, rtol=1e-5, atol=1e-6, msg=name)
    # the metrics CSV of the first attempt is kept beside the resumed one
    assert len(list((killed / "csv").glob("version_*/metrics.csv"))) == 2


@pytest.mark.slow
def test_ddp_on_cpu_with_two_processes_trains_and_validates(tmp_path):
    out = tmp_path / "ddp"
    result = run_cli(
        tiny(
            tmp_path,
            f"out_dir={out}",
            "trainer.devices=2",
            "trainer.strategy=ddp",
            "trainer.max_epochs=2",
        )
    )
    assert result.returncode == 0, result.stderr[-3000:]
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["epoch"] == 1
    metrics = next((out / "csv").glob("version_*/metrics.csv")).read_text()
    assert "val/elbo" in metrics


@pytest.mark.slow
def test_bf16_mixed_on_cpu_trains(tmp_path):
    out = tmp_path / "bf16"
    args = tiny(tmp_path, f"out_dir={out}", "trainer.precision=bf16-mixed", "trainer.max_epochs=2")
    assert fit_main(args) == 0
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    for name, value in ckpt["state_dict"].items():
        assert value.dtype == torch.float32 and torch.isfinite(value).all(), name
    rows = next((out / "csv").glob("version_*/metrics.csv")).read_text().splitlines()
    header = rows[0].split(",")
    col = header.index("val/elbo")
    elbos = [float(r.split(",")[col]) for r in rows[1:] if r.split(",")[col]]
    assert len(elbos) == 2 and all(torch.isfinite(torch.tensor(elbos)))


@pytest.mark.slow
def test_last_checkpoint_is_the_latest_even_without_improvement(tmp_path):
    """ckpt_path=last resumes from the last validation, not from the last improvement."""
    out = tmp_path / "flat"
    # lr 0: the weights never change, so val/elbo never improves after the first validation
    args = tiny(tmp_path, f"out_dir={out}", "optim.lr=0", "trainer.max_epochs=3")
    assert fit_main([*args, "trainer.early_stopping_patience=null"]) == 0
    last = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert last["epoch"] == 2
    best = list((out / "checkpoints").glob("best-*.ckpt"))
    assert len(best) == 1 and best[0].name.startswith("best-epoch=0-")


@pytest.mark.slow
def test_fivo_objective_trains_and_resumes(tmp_path):
    """vrnn-fit --config conf/debug.yaml optim.objective=fivo optim.particles=4 (tiny):
    it trains, validates the ELBO and the FIVO bound, and a run resumed from its last
    checkpoint ends with the weights of an uninterrupted one (the particle filter's draws
    come from the module's seeded generator)."""

    def fit(out: Path, *extra: str) -> int:
        fivo = ["optim.objective=fivo", "optim.particles=4", "trainer.early_stopping_patience=null"]
        args = tiny(tmp_path, f"out_dir={out}", *fivo, *extra)
        return fit_main(args)

    assert fit(tmp_path / "straight", "trainer.max_epochs=2") == 0
    assert fit(tmp_path / "resumed", "trainer.max_epochs=1") == 0
    assert fit(tmp_path / "resumed", "trainer.max_epochs=2", "ckpt_path=last") == 0
    ref_weights, ref_elbo, ref_epoch, ref_step = _final_state(tmp_path / "straight")
    weights, elbo, epoch, step = _final_state(tmp_path / "resumed")
    assert (epoch, step) == (ref_epoch, ref_step) and epoch == 1
    assert elbo == pytest.approx(ref_elbo, rel=1e-6)
    for name, value in ref_weights.items():
        torch.testing.assert_close(weights[name], value, rtol=1e-5, atol=1e-6, msg=name)
    metrics = next((tmp_path / "straight" / "csv").glob("version_*/metrics.csv")).read_text()
    header = metrics.splitlines()[0].split(",")
    assert {"val/elbo", "val/fivo", "train/fivo"} <= set(header)


@pytest.mark.parametrize("max_steps, best", [(2, []), (5, ["best-epoch=0-step=3.ckpt"])])
def test_the_best_checkpoint_is_judged_at_validations_only(max_steps, best, tmp_path):
    # epochs of 3 steps, each ending in a validation; max_steps stops the run in mid-epoch,
    # before any validation (2) or after one (5). The best checkpoint used to be judged at
    # a training epoch's end too, where a run with no validation yet has no val/elbo ("could
    # not find the monitored key" warning); the last checkpoint is written either way
    import warnings

    from conftest import tiny_config

    from vrnn_lightning.training import train

    cfg = tiny_config(
        f"data.cache_dir={tmp_path / 'cache'}", f"out_dir={tmp_path / 'run'}",
        "trainer.max_epochs=-1", "trainer.limit_train_batches=3", f"trainer.max_steps={max_steps}",
        "trainer.limit_val_batches=1",
    )  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(cfg)
    messages = [str(w.message) for w in caught]
    assert not [m for m in messages if "monitored key" in m], messages
    checkpoints = tmp_path / "run" / "checkpoints"
    assert [p.name for p in checkpoints.glob("best-*.ckpt")] == best
    assert (checkpoints / "last.ckpt").exists()
