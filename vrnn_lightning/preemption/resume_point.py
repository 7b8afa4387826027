"""ResumePoint: the one writer of a run's ``last.ckpt``, and where a stop signal is acted on.

``last.ckpt`` is written with ``trainer.save_checkpoint`` (every rank together, as DDP needs)
at batch boundaries whose state Lightning resumes exactly:

- after every validation (not the sanity check);
- after a training batch at which the optimiser stepped and no validation follows, when
  that batch is the run's last (max_steps, max_epochs) or its epoch's last, or when a stop
  signal is agreed there;
- after a validation when a stop signal is agreed (a signal that arrives during a
  validation stops the run when the validation ends: the checkpoint is then the usual one).

It is never written in an epoch's end hooks (where ModelCheckpoint saves by default):
Lightning 2.6.6 resumes such a checkpoint one epoch short when max_steps is set. A stop is
never acted on at a batch a validation follows, so a resumed run never skips a validation,
nor inside gradient accumulation, whose gradients a checkpoint does not hold.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Checkpoint

from . import slurm
from .signals import Preempted, StopSignals

# every checkpoint a vrnn-fit run writes says it was written by this scheme (legacy.py: the
# ones without it, from vrnn-lightning 0.1, need Lightning's epoch count mended)
RESUME_FORMAT = "vrnn_lightning_resume_format"


def validation_follows(trainer: L.Trainer, batch_idx: int) -> bool:
    """Whether Lightning validates right after training batch ``batch_idx`` of this epoch:
    its rule (training_epoch_loop's _should_check_val_fx), from the trainer's public
    attributes. tests/test_preemption.py holds it against the validations a run makes."""
    if not trainer.enable_validation:
        return False
    every = trainer.check_val_every_n_epoch
    if every is not None and (trainer.current_epoch + 1) % every:
        return False
    interval = trainer.val_check_batch
    if not isinstance(interval, (int, float)) or interval == float("inf"):
        # a time-based interval (or an unsized loader): the epoch's end only
        return batch_idx + 1 >= trainer.num_training_batches
    # check_val_every_n_epoch=None counts batches over the whole run
    count = batch_idx + 1 if every is not None else trainer.global_step
    return count % int(interval) == 0


class ResumePoint(Checkpoint):
    """Writes ``path`` (the run's last.ckpt) where a run resumes exactly, and stops the run
    on SIGTERM or SIGUSR1 (see the module's docstring). A Checkpoint, so that Lightning calls
    it after the other callbacks (early stopping, the best checkpoint): their state is in it."""

    def __init__(self, path: str | Path, signals: StopSignals | None = None):
        self.path = Path(path)
        self.signals = signals or StopSignals()
        self.saved_step: int | None = None  # the step of the last save here

    # Lightning installs its own handlers as fit starts: take them back (the sanity check
    # runs first, when there is one)
    def on_sanity_check_start(self, trainer, pl_module) -> None:
        self.signals.install()

    def on_train_start(self, trainer, pl_module) -> None:
        self.signals.install()

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        checkpoint[RESUME_FORMAT] = 2

    def save(self, trainer: L.Trainer) -> None:
        trainer.save_checkpoint(self.path, weights_only=False)  # everything, to resume
        self.saved_step = trainer.global_step

    def stop(self, trainer: L.Trainer, signum: int) -> None:
        """After the save: requeue the SLURM job on SIGUSR1 (rank 0), then stop every rank."""
        if signum == slurm.REQUEUE_SIGNAL and trainer.is_global_zero:
            print(f"vrnn-fit: {slurm.requeue()}", flush=True)
        raise Preempted(signum, trainer.global_step)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        last_of_epoch = batch_idx + 1 >= trainer.num_training_batches
        stepped = last_of_epoch or (batch_idx + 1) % trainer.accumulate_grad_batches == 0
        if not stepped or validation_follows(trainer, batch_idx):
            return  # every rank alike: the same batch, the same settings
        signum = self.signals.agreed(trainer)
        max_steps, max_epochs = trainer.max_steps, trainer.max_epochs
        epochs_done = max_epochs not in (None, -1) and trainer.current_epoch + 1 >= max_epochs
        last_of_run = (max_steps > 0 and trainer.global_step >= max_steps) or (
            last_of_epoch and epochs_done
        )
        if signum or last_of_run or last_of_epoch:
            self.save(trainer)
        if signum:
            self.stop(trainer, signum)

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        self.save(trainer)
        signum = self.signals.agreed(trainer)
        if signum:
            self.stop(trainer, signum)
