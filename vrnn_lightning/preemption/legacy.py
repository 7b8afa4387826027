"""Checkpoints written by vrnn-lightning 0.1 at a training epoch's end still resume.

Version 0.1 let ModelCheckpoint write last.ckpt in the epoch's end hooks, where Lightning
counts the epoch as processed but not completed. Lightning 2.6 resumes such a checkpoint
right only when the epoch had run to its end and max_steps is unset; with max_steps set it
runs the epoch's end again and counts the epoch twice (the run stops one epoch early), and
after a stop in mid-epoch it skips the rest of that epoch. Taking the count back makes
Lightning resume the epoch at the loader's batch (its end then runs once).

No public API reaches a checkpoint's loop counts, so this reads and mends them here, in
one function, for checkpoints without ResumePoint's mark only (checkpoints written since
never need it); tests/test_preemption.py fails if Lightning's checkpoint layout changes.
"""

from __future__ import annotations

import lightning as L

from .resume_point import RESUME_FORMAT


def mend_epoch_end_checkpoint(checkpoint: dict, max_steps: int) -> bool:
    """Mend a 0.1 checkpoint written in an epoch's end hooks; whether it was one."""
    if RESUME_FORMAT in checkpoint:
        return False
    loop = checkpoint.get("loops", {}).get("fit_loop")
    if loop is None:
        return False
    place = (loop["state_dict"].get("combined_loader") or [{}])[0]
    if max_steps == -1 and place.get("batch", 0) == 0:
        return False  # Lightning resumes this one right
    mended = False
    for epochs in loop["epoch_progress"].values():  # "total" and "current"
        if epochs["processed"] == epochs["started"] == epochs["completed"] + 1:
            epochs["processed"] -= 1
            mended = True
    return mended


class ResumeLegacyCheckpoint(L.Callback):
    """Applies ``mend_epoch_end_checkpoint`` as a checkpoint is resumed."""

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        mend_epoch_end_checkpoint(checkpoint, trainer.max_steps)
