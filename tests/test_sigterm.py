"""A run stopped by SIGTERM (a scheduler's preemption) or Ctrl-C does not look finished: it
exits 128 + the signal, says how to resume, and SIGTERM saves a last.ckpt that resumes it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import lightning as L
import pytest
import torch
from conftest import REPO, tiny, tiny_config
from test_resume_mid_epoch import Batches

from vrnn_lightning.fit import main as fit_main
from vrnn_lightning.local_sweep import run_state
from vrnn_lightning.metrics_csv import metric_history
from vrnn_lightning.training import LEARNING_CURVES, RunInterrupted, train

RUN = [
    "trainer.max_epochs=100",
    "trainer.max_steps=230",  # 10 epochs of 23 batches
    "trainer.limit_val_batches=1",
    "trainer.early_stopping_patience=null",
]


def test_sigterm_saves_last_ckpt_exits_143_and_the_rerun_finishes_the_run(tmp_path):
    out = tmp_path / "run"
    args = tiny(tmp_path, f"out_dir={out}", "data.num_workers=1", *RUN)
    proc = subprocess.Popen(
        [sys.executable, "-m", "vrnn_lightning.fit", *args],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, signalled as a scheduler does
    )
    last = out / "checkpoints" / "last.ckpt"
    deadline = time.time() + 240
    while not last.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    # after the first epoch's checkpoint, to the run and its DataLoader worker
    os.killpg(proc.pid, signal.SIGTERM)
    err = proc.communicate(timeout=120)[1]

    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    saved = torch.load(last, map_location="cpu", weights_only=True)  # complete, and safe
    step = saved["global_step"]
    assert 23 <= step < 230, "the run stopped in between"
    message = err.strip().splitlines()[-1]
    assert message == (
        f"vrnn-fit: interrupted by SIGTERM at step {step}; {last} saved at that step. "
        "The same command resumes the run (ckpt_path=auto)"
    )
    assert not (out / LEARNING_CURVES).exists(), "nothing that a finished run writes"
    assert not list(last.parent.glob(".*tmp*")), "no temporary file left behind"

    assert fit_main(args) == 0  # the same command resumes
    assert torch.load(last, map_location="cpu", weights_only=True)["global_step"] == 230
    assert (out / LEARNING_CURVES).is_file()


class SendAt(L.Callback):
    """Sends ``signum`` to this process after training batch ``step`` (or the first batch of
    the validation after it)."""

    def __init__(self, signum: int, step: int, in_validation: bool = False):
        self.signum, self.step, self.in_validation = signum, step, in_validation

    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == self.step and not self.in_validation:
            os.kill(os.getpid(), self.signum)

    def on_validation_batch_end(self, trainer, *args):
        if trainer.global_step == self.step and self.in_validation and not trainer.sanity_checking:
            os.kill(os.getpid(), self.signum)


def _train(tmp_path, out, *extra, callbacks=()):
    batches = Batches()
    cfg = tiny_config(f"data.cache_dir={tmp_path / 'cache'}", f"out_dir={tmp_path / out}", *extra)
    train(cfg, extra_callbacks=[batches, *callbacks])
    return batches.seen


@pytest.mark.parametrize("in_validation", [False, True], ids=["training", "validation"])
def test_a_run_stopped_by_sigterm_resumes_to_the_batches_of_an_uninterrupted_one(
    tmp_path, in_validation
):
    # a validation of 3 batches every 10 training batches: SIGTERM after step 13, or in the
    # middle of the validation at step 20
    run = [*RUN[:1], "trainer.max_steps=30", "trainer.val_check_interval=10"]
    run += ["trainer.limit_val_batches=3", "trainer.early_stopping_patience=null"]
    straight = _train(tmp_path, "straight", *run)
    stop = 20 if in_validation else 13
    with pytest.raises(RunInterrupted) as stopped:
        _train(tmp_path, "stopped", *run, callbacks=[SendAt(signal.SIGTERM, stop, in_validation)])
    assert stopped.value.exit_code == 143 and f"at step {stop};" in str(stopped.value)
    rest = _train(tmp_path, "stopped", *run, "ckpt_path=last")
    assert min(rest) == (0, stop)
    assert {k: straight[k] for k in rest} == rest and max(rest) == max(straight)
    ckpts = [tmp_path / out / "checkpoints" / "last.ckpt" for out in ("straight", "stopped")]
    weights = [torch.load(c, map_location="cpu", weights_only=True)["state_dict"] for c in ckpts]
    for name, value in weights[0].items():
        torch.testing.assert_close(weights[1][name], value, msg=name)
    # every validation scored in full, the interrupted one again after the resume
    scores = [metric_history(tmp_path / out, "val/elbo") for out in ("straight", "stopped")]
    assert [h["_step"] for h in scores[0]] == [9, 19]
    assert scores[1] == scores[0]


def test_ctrl_c_exits_130_saying_the_last_checkpoint_is_the_last_validations(tmp_path):
    run = [*RUN[:1], "trainer.max_steps=30", "trainer.limit_val_batches=1"]
    ctrl_c = signal.getsignal(signal.SIGINT)
    # Python's own Ctrl-C handler: a process started in the background by a non-interactive
    # shell (as a CI job may be) inherits SIGINT ignored
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(RunInterrupted) as stopped:
            _train(tmp_path, "run", *run, callbacks=[SendAt(signal.SIGINT, 26)])
    finally:  # Lightning ignores any further Ctrl-C once it has had one
        signal.signal(signal.SIGINT, ctrl_c)
    assert stopped.value.exit_code == 130
    assert "interrupted by Ctrl-C at step 26;" in str(stopped.value)
    assert "is from the last validation" in str(stopped.value)
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert torch.load(last, map_location="cpu", weights_only=True)["global_step"] == 23


def test_an_interrupted_run_is_preempted_for_the_sweep_never_finished():
    assert run_state(0) == "finished"
    assert run_state(1) == run_state(2) == "failed"
    for code in (143, 130, -signal.SIGTERM):
        assert run_state(code) == "preempted"


@pytest.mark.slow
def test_ddp_ranks_signalled_together_stop_at_the_same_batch_and_save(tmp_path):
    # Lightning's own handler broadcast from inside the signal handler: signalled together,
    # the two ranks hung in mismatched collectives (4 runs of 4)
    out = tmp_path / "ddp"
    ddp = ["trainer.devices=2", "trainer.strategy=ddp", "trainer.val_check_interval=5"]
    args = tiny(tmp_path, f"out_dir={out}", *ddp, "trainer.limit_val_batches=2", *RUN[:1])
    proc = subprocess.Popen(
        [sys.executable, "-m", "vrnn_lightning.fit", *args, "trainer.max_steps=1000"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    last = out / "checkpoints" / "last.ckpt"
    try:
        deadline = time.time() + 240
        while not last.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGTERM)  # both ranks, as a scheduler does
        err = proc.communicate(timeout=120)[1]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 143, err[-3000:]
    step = torch.load(last, map_location="cpu", weights_only=True)["global_step"]
    assert f"interrupted by SIGTERM at step {step};" in err
