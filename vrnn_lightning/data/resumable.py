"""The training DataLoader: a run resumed in mid-epoch carries on at the batch it stopped at.

Every training sampler here (WindowSampler, LengthBucketSampler, StreamSampler) draws an
epoch's plan from its seed and the epoch alone, so a run's place in its data is two numbers:
the epoch and how many of its batches were trained on. ``state_dict()`` says them; Lightning
keeps it in the checkpoint (the fit loop's ``combined_loader`` state) and, resuming, gives it
back to ``load_state_dict()`` before the first batch is drawn. The next pass then draws that
epoch's plan and skips those batches as lists of indices (no data is read for them), after
Lightning's DDP sharding: every rank draws exactly the batches an uninterrupted run would, a
short last batch included. Lightning counts a loader with ``state_dict``/``load_state_dict`` as
resumable, so it no longer warns that it is not.

Each pass draws the plan of the epoch the trainer is in (the epoch of the logs, the checkpoint
and the module's noise), not the number Lightning passes to ``set_epoch``: that is its count of
processed epochs, one ahead for the rest of a run resumed (with max_steps set) from a
checkpoint written at the end of a training epoch.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import lightning as L
from torch.utils.data import DataLoader


def trainer_epoch(trainer: L.Trainer) -> int:
    """The epoch the trainer is in: the one its batch counts are of, whether or not the
    epoch's end hooks ran."""
    return max(trainer.fit_loop.epoch_progress.current.started - 1, 0)


class _Passes:
    """A loader's index batches, one pass per epoch; each pass sets the sampler's epoch, and
    the first after a resume starts at the saved batch."""

    def __init__(self, batches, set_epoch: Callable[[int], None], trainer):
        self.batches, self.set_epoch, self.trainer = batches, set_epoch, trainer
        self.resume: tuple[int, int] | None = None  # (epoch, batch) of the next pass

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator:
        # a generator: this runs when the pass's first batch is drawn (torch's worker iterator
        # calls iter() twice as it starts, and draws from the second), after Lightning has
        # moved on to the epoch the pass is for
        trainer = self.trainer()
        epoch, skip = self.resume or (None if trainer is None else trainer_epoch(trainer), 0)
        self.resume = None
        if epoch is not None:  # in a plain loop the sampler counts its own passes
            self.set_epoch(epoch)
        yield from itertools.islice(self.batches, skip, None)


class ResumableLoader(DataLoader):
    """A DataLoader that saves and restores its place in the epoch. ``trainer`` returns the
    Lightning trainer fitting with it, or None: only the fit loop knows which batches were
    trained on (the loader draws ahead)."""

    def __init__(self, *args, trainer: Callable[[], L.Trainer | None], **kwargs):
        super().__init__(*args, **kwargs)
        self.trainer = trainer
        set_epoch = getattr(self.sampler, "set_epoch", lambda epoch: None)  # DDP: forwarded
        self._passes = _Passes(super()._index_sampler, set_epoch, trainer)

    @property
    def _index_sampler(self):
        # what torch's DataLoader iterators (one process or workers, persistent or not) draw
        # every pass's index batches from: the batch sampler, here in _Passes
        return self._passes

    def state_dict(self) -> dict:
        trainer = self.trainer()
        epoch = trainer_epoch(trainer)
        trained = trainer.fit_loop.epoch_loop.batch_progress.current.ready
        if trained >= trainer.num_training_batches:  # the epoch is done: the next, from its start
            return {"epoch": epoch + 1, "batch": 0}
        return {"epoch": epoch, "batch": trained}

    def load_state_dict(self, state: dict) -> None:
        self._passes.resume = (state["epoch"], state["batch"])
