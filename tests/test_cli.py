"""The command line shows what it can do: --print-config, any Trainer keyword, the command
list, the version, fast --help, and a run that prints no known noise."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import tiny
from omegaconf import OmegaConf

import vrnn_lightning
from vrnn_lightning import fit
from vrnn_lightning.config import Config

ROOT = Path(__file__).resolve().parents[1]


def _python(*args: str, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=env, timeout=600, **kwargs
    )


def _keys(node, prefix="") -> set[str]:
    out = set()
    for k, v in node.items():
        out |= _keys(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}"}
    return out


def test_print_config_prints_every_key_and_exits(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    demo = str(ROOT / "conf" / "demo.yaml")
    assert fit.main(["--config", demo, "--print-config", "model.z_dim=7"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    schema = OmegaConf.to_container(OmegaConf.structured(Config))
    assert _keys(printed) == _keys(schema)
    assert printed["model"]["z_dim"] == 7 and printed["name"] == "demo"
    assert not (tmp_path / "runs").exists()  # nothing trained, no run folder


def test_any_trainer_keyword_is_a_key_checked_against_the_signature(capsys):
    assert fit.main(["--print-config", "trainer.accumulate_grad_batches=2"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["trainer"]["accumulate_grad_batches"] == 2
    assert fit.main(["trainer.bogus_keyword=1"]) == 2
    err = capsys.readouterr().err
    assert "trainer.bogus_keyword" in err and "not a lightning.Trainer argument" in err
    assert fit.main(["trainer.gradient_clip_val=1"]) == 2
    assert "optim.grad_clip" in capsys.readouterr().err


def test_fast_dev_run_trains_one_batch(tmp_path):
    run = tmp_path / "run"
    args = tiny(
        tmp_path, f"out_dir={run}", "trainer.fast_dev_run=true", "logger.wandb.mode=offline"
    )
    assert fit.main(args) == 0
    assert not (run / "wandb").exists()  # no W&B run opened for a dummy logger


def test_python_m_lists_the_commands_and_the_version():
    out = _python("-m", "vrnn_lightning").stdout
    for command in ("vrnn-prepare", "vrnn-fit", "vrnn-eval", "vrnn-sample", "vrnn-export"):
        assert command in out
    assert vrnn_lightning.__version__ in out
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", vrnn_lightning.__version__)
    toml = (ROOT / "pyproject.toml").read_text()
    assert 'vrnn-export = "vrnn_lightning.export:main"' in toml
    assert "--ckpt" in _python("-m", "vrnn_lightning.export", "--help").stdout


@pytest.mark.parametrize("command", ["fit", "evaluate", "sample", "export"])
def test_help_names_the_sections_without_importing_torch(command):
    code = (
        f"import sys\nfrom vrnn_lightning import {command}\n"
        f"try:\n    {command}.main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('TORCH' if 'torch' in sys.modules or 'lightning' in sys.modules else 'LIGHT')"
    )
    out = _python("-c", code).stdout
    assert out.strip().endswith("LIGHT"), out
    if command in ("fit", "evaluate", "sample"):
        assert "--print-config" in out and "sections" in out


def test_a_run_prints_no_known_noise_and_draws_its_curves(tmp_path):
    run = tmp_path / "run"
    args = tiny(
        tmp_path,
        f"out_dir={run}",
        "logger.wandb.mode=offline",
        "logger.tensorboard=true",
        # what a user's run prints too: the progress bar (v_num) and the samples of each
        # validation
        "trainer.enable_progress_bar=true",
        "sample.every_n_validations=1",
        "sample.n=1",
        "sample.steps=4",
    )
    done = _python("-m", "vrnn_lightning.fit", *args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    output = done.stdout + done.stderr
    for noise in (
        "anonymous setting",
        "Tip:",
        "FLOPs",
        "LeafSpec",
        "v_num",
        "TPU available",
        "GPU available: False",
        "Skipping setting a default `ModelSummary`",
    ):
        assert noise not in output, noise
    assert "Trainable params" in output  # the model summary is still there
    assert (run / "learning_curves.png").stat().st_size > 0
    assert list((run / "tensorboard").rglob("events.out.tfevents.*"))
    # resumed from its end-of-epoch checkpoint: no word about the run's own checkpoint folder
    resumed = _python(
        "-m", "vrnn_lightning.fit", *args, "trainer.max_epochs=3", "ckpt_path=last", cwd=tmp_path
    )
    assert resumed.returncode == 0, resumed.stderr
    output = resumed.stdout + resumed.stderr
    for noise in ("exists and is not empty", "not resumable", "anonymous setting", "Tip:"):
        assert noise not in output, noise
    assert "Restored all states" in output
