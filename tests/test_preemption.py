"""vrnn_lightning/preemption: SIGUSR1 and SLURM's requeue, ckpt_path=auto, the validation rule
ResumePoint relies on, and 0.1's epoch-end checkpoints. SIGTERM itself: test_sigterm.py;
several DDP ranks: test_ddp.py."""

from __future__ import annotations

import os
import signal
import stat

import lightning as L
import pytest
import torch
from conftest import DEBUG_CONFIG, tiny_config
from lightning.pytorch.callbacks import ModelCheckpoint
from test_resume_mid_epoch import Batches
from test_sigterm import SendAt

from vrnn_lightning.config import ConfigError
from vrnn_lightning.fit import main as fit_main
from vrnn_lightning.preemption import (
    FINISHED,
    RESUME_FORMAT,
    resolve_ckpt_path,
    validation_follows,
)
from vrnn_lightning.preemption.legacy import mend_epoch_end_checkpoint
from vrnn_lightning.training import RunInterrupted, train

RUN = ["trainer.max_epochs=100", "trainer.early_stopping_patience=null"]
RUN += ["trainer.limit_val_batches=1", "trainer.max_steps=30", "trainer.val_check_interval=10"]


def _cfg(tmp_path, out, *extra):
    return tiny_config(f"data.cache_dir={tmp_path / 'cache'}", f"out_dir={tmp_path / out}", *extra)


def _train(tmp_path, out, *extra, callbacks=()):
    batches = Batches()
    train(_cfg(tmp_path, out, *extra), extra_callbacks=[batches, *callbacks])
    return batches.seen


def _weights(path):
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def _assert_same_weights(a, b):
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for name, value in wa.items():
        torch.testing.assert_close(wb[name], value, msg=name)


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    """A SLURM job (as SLURMEnvironment.detect reads it) whose ``scontrol`` records its
    arguments in the file this returns."""
    calls = tmp_path / "scontrol.calls"
    scontrol = tmp_path / "bin" / "scontrol"
    scontrol.parent.mkdir()
    scontrol.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    scontrol.chmod(scontrol.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{scontrol.parent}{os.pathsep}{os.environ['PATH']}")
    for key, value in {
        "SLURM_JOB_ID": "4242",
        "SLURM_JOB_NAME": "vrnn",
        "SLURM_NTASKS": "1",
        "SLURM_NTASKS_PER_NODE": "1",
        "SLURM_PROCID": "0",
        "SLURM_LOCALID": "0",
        "SLURM_NODEID": "0",
        "SLURM_NODELIST": "node1",
    }.items():
        monkeypatch.setenv(key, value)
    return calls


def test_sigusr1_under_slurm_saves_requeues_exits_138_and_the_same_command_resumes(
    tmp_path, fake_slurm
):
    straight = _train(tmp_path, "straight", *RUN)
    with pytest.raises(RunInterrupted) as stopped:
        _train(tmp_path, "job", *RUN, callbacks=[SendAt(signal.SIGUSR1, 13)])
    assert stopped.value.exit_code == 138
    assert "interrupted by SIGUSR1 at step 13;" in str(stopped.value)
    assert fake_slurm.read_text().split() == ["requeue", "4242"], "rank 0 requeued the job"
    last = tmp_path / "job" / "checkpoints" / "last.ckpt"
    assert torch.load(last, map_location="cpu", weights_only=True)["global_step"] == 13
    # Lightning's SLURM handler would have saved an hpc_ckpt from inside the signal handler
    assert not list((tmp_path / "job").rglob("hpc_ckpt*"))
    assert not (tmp_path / "job" / FINISHED).exists()

    rest = _train(tmp_path, "job", *RUN)  # the requeued job's unchanged command
    assert min(rest) == (0, 13) and max(rest) == max(straight)
    assert {k: straight[k] for k in rest} == rest
    _assert_same_weights(tmp_path / "straight" / "checkpoints" / "last.ckpt", last)
    assert (tmp_path / "job" / FINISHED).is_file()


def test_sigusr1_outside_slurm_stops_the_same_way_without_a_requeue(tmp_path, monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.delenv("SLURM_NTASKS", raising=False)
    with pytest.raises(RunInterrupted) as stopped:
        _train(tmp_path, "run", *RUN, callbacks=[SendAt(signal.SIGUSR1, 7)])
    assert stopped.value.exit_code == 138
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL, "the handler is put back"


def test_a_finished_run_is_refused_unchanged_and_ckpt_path_last_trains_it_further(tmp_path):
    out = tmp_path / "run"
    args = ["--config", str(DEBUG_CONFIG), f"data.cache_dir={tmp_path / 'cache'}"]
    args += [f"out_dir={out}", *RUN[:3], "trainer.max_steps=12"]
    assert fit_main(args) == 0
    assert (out / FINISHED).is_file()
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}

    assert fit_main(args) == 2  # the same command again: not trained twice
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before

    assert fit_main([*args, "ckpt_path=last", "trainer.max_steps=20"]) == 0
    last = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["global_step"] == 20
    assert '"step": 20' in (out / FINISHED).read_text()


def test_ckpt_path_auto_starts_afresh_resumes_last_and_never_overwrites_other_checkpoints(
    tmp_path,
):
    cfg = _cfg(tmp_path, "run")
    checkpoints = tmp_path / "run" / "checkpoints"
    assert resolve_ckpt_path(cfg) is None  # an empty folder: a new run
    checkpoints.mkdir(parents=True)
    (checkpoints / "best-epoch=0-step=9.ckpt").write_bytes(b"x")
    with pytest.raises(ConfigError, match="no last.ckpt to resume"):
        resolve_ckpt_path(cfg)
    (checkpoints / "last.ckpt").write_bytes(b"x")
    assert resolve_ckpt_path(cfg) == str(checkpoints / "last.ckpt")
    with pytest.raises(ConfigError, match="ckpt_path=null only starts afresh"):
        resolve_ckpt_path(_cfg(tmp_path, "run", "ckpt_path=null"))
    with pytest.raises(ConfigError, match="ckpt_path: checkpoint .* does not exist"):
        resolve_ckpt_path(_cfg(tmp_path, "run", f"ckpt_path={tmp_path / 'nothing.ckpt'}"))


class Validations(L.Callback):
    """Where Lightning validates, and where validation_follows says it will."""

    def __init__(self):
        self.predicted, self.actual, self.last = [], [], None

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.last = (trainer.current_epoch, batch_idx)
        if validation_follows(trainer, batch_idx):
            self.predicted.append(self.last)

    def on_validation_start(self, trainer, module):
        if not trainer.sanity_checking:
            self.actual.append(self.last)


@pytest.mark.parametrize(
    "settings",
    [
        ["trainer.val_check_interval=7"],
        ["trainer.val_check_interval=0.5"],
        ["trainer.val_check_interval=null", "trainer.check_val_every_n_epoch=2"],
        ["trainer.val_check_interval=9", "trainer.check_val_every_n_epoch=null"],
        ["trainer.val_check_interval=6", "trainer.accumulate_grad_batches=2"],
        ["trainer.val_check_interval=null", "trainer.limit_val_batches=0"],
    ],
    ids=["every-7", "half-epoch", "every-2nd-epoch", "9-over-epochs", "accumulate", "none"],
)
def test_validation_follows_is_lightnings_rule(tmp_path, settings):
    seen = Validations()
    run = ["trainer.max_epochs=4", "trainer.early_stopping_patience=null"]
    run += ["trainer.limit_val_batches=1", *settings]
    train(_cfg(tmp_path, "run", *run), extra_callbacks=[seen])
    assert seen.predicted == seen.actual
    assert seen.actual or "trainer.limit_val_batches=0" in settings


def test_a_0_1_epoch_end_checkpoint_resumes_to_the_batches_of_an_uninterrupted_run(tmp_path):
    # vrnn-lightning 0.1 saved last.ckpt in the epoch's end hooks, also when max_steps stopped
    # the run in mid-epoch; resumed for longer, Lightning skipped the rest of that epoch (it
    # ended at step 36 of 46 here). 23 batches an epoch.
    run = ["trainer.max_epochs=2", "trainer.early_stopping_patience=null"]
    run += ["trainer.limit_val_batches=1"]
    straight = _train(tmp_path, "straight", *run)
    old = ModelCheckpoint(
        dirpath=str(tmp_path / "old"), filename="last", save_on_train_epoch_end=True
    )
    _train(tmp_path, "stopped", *run, "trainer.max_steps=13", callbacks=[old])
    saved = torch.load(tmp_path / "old" / "last.ckpt", map_location="cpu", weights_only=False)
    assert saved["global_step"] == 13
    del saved[RESUME_FORMAT]  # as 0.1 wrote it
    legacy = tmp_path / "legacy.ckpt"
    torch.save(saved, legacy)

    rest = _train(tmp_path, "resumed", *run, f"ckpt_path={legacy}")
    assert min(rest) == (0, 13) and max(rest) == max(straight) == (1, 22)
    assert {k: straight[k] for k in rest} == rest
    assert len(rest) == 46 - 13
    _assert_same_weights(
        tmp_path / "straight" / "checkpoints" / "last.ckpt",
        tmp_path / "resumed" / "checkpoints" / "last.ckpt",
    )


def test_mend_leaves_checkpoints_of_this_scheme_alone():
    progress = {"started": 2, "processed": 2, "completed": 1, "ready": 2}
    loop = {"epoch_progress": {"total": dict(progress), "current": dict(progress)}}
    loop["state_dict"] = {"combined_loader": [{"epoch": 1, "batch": 0}]}
    ours = {RESUME_FORMAT: 2, "loops": {"fit_loop": loop}}
    assert not mend_epoch_end_checkpoint(ours, max_steps=60)
    old = {"loops": {"fit_loop": loop}}
    assert mend_epoch_end_checkpoint(old, max_steps=60)
    assert loop["epoch_progress"]["total"]["processed"] == 1
