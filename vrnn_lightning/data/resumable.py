"""This rank's batches of an epoch, and the training loader that resumes them in mid-epoch.

Every sampler here (WindowSampler, LengthBucketSampler, StreamSampler, SequenceSampler)
draws an epoch's *plan* from its seed and the epoch alone: a sequence of keys in which
global batch j is keys [j W B, (j + 1) W B) for W ranks of batch B. ``EpochBatches`` turns
the plan into one rank's batches: rank r takes keys r, r + W, r + 2W, ... of each global
batch, so that W ranks train on exactly the global batches one process with batch W x B
would. For training, the epoch's last, short global batch is cut to a multiple of W keys
(the at most W - 1 keys left over are left out of that epoch; with one rank nothing is):
every rank then has the same number of batches, as DDP needs. For evaluation every key is
scored once, the ranks' shares differing by at most one.

Why not Lightning's sharding: for a training loader Lightning wraps any custom sampler in a
``DistributedSamplerWrapper(shuffle=True)``, which re-shuffles the plan (streams stop being
streams, buckets stop being buckets). vrnn-fit passes ``use_distributed_sampler=False`` and
every loader shards itself here; a loader built without a trainer is rank 0 of 1.

A run's place in its data is two numbers: the epoch and how many of its batches were trained
on. The DataModule reports every batch training takes (its ``on_before_batch_transfer``
hook: Lightning calls it as a batch's turn comes, never for one drawn ahead);
``ResumableLoader.state_dict()`` says the place, Lightning keeps it in the checkpoint (the fit
loop's loader state) and gives it back to ``load_state_dict()`` before the first batch is
drawn. The next pass then draws that epoch's plan and skips the batches already trained on
as lists of keys (no data is read for them). Each pass draws the plan of the epoch the
trainer is in (``trainer.current_epoch``, read when the pass starts), or of its own count of
passes in a plain loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
from torch.utils.data import DataLoader, Sampler


class EpochBatches(Sampler[list]):
    """One rank's batches of ``batch_size`` keys of ``sampler``'s plan (any object with
    ``plan(epoch) -> keys``), every pass the plan of one epoch.

    ``even=True`` (training): every rank the same number of batches (see the module's
    docstring). ``epoch_of()`` gives the epoch a pass is for (None: count passes here);
    ``epoch_length()`` the batches an epoch trains on (None: all of them; a trainer's
    limit_train_batches takes fewer)."""

    def __init__(
        self,
        sampler,
        batch_size: int,
        *,
        rank: int = 0,
        world_size: int = 1,
        even: bool = True,
        epoch_of: Callable[[], int | None] = lambda: None,
        epoch_length: Callable[[], int | None] = lambda: None,
    ):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not one of {world_size} ranks")
        self.sampler, self.batch_size = sampler, int(batch_size)
        self.rank, self.world_size, self.even = rank, world_size, even
        self.epoch_of, self.epoch_length = epoch_of, epoch_length
        self.epoch = 0  # the next pass's epoch when epoch_of() says none
        self.resume: tuple[int, int] | None = None  # (epoch, batch) the next pass starts at
        self.place: tuple[int, int] | None = None  # (epoch, batches trained) of this pass

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def keys(self, epoch: int) -> np.ndarray:
        """This rank's keys of one epoch, in order."""
        plan = np.asarray(self.sampler.plan(epoch))
        world = self.world_size
        end = len(plan) - len(plan) % world if self.even else len(plan)
        return plan[self.rank : end : world]

    def __len__(self) -> int:
        n = len(self.sampler)
        mine = n // self.world_size if self.even else len(range(self.rank, n, self.world_size))
        return -(-mine // self.batch_size)

    def __iter__(self) -> Iterator[list]:
        # a generator: this runs when the pass's first batch is drawn (torch's worker iterator
        # calls iter() twice as it starts, and draws from the second), once the trainer is in
        # the epoch the pass is for
        if self.resume is not None:
            epoch, skip = self.resume
            self.resume = None
        else:
            fitting = self.epoch_of()
            epoch, skip = (self.epoch if fitting is None else fitting), 0
        self.epoch = epoch + 1
        self.place = (epoch, skip)
        keys = self.keys(epoch)
        for start in range(skip * self.batch_size, len(keys), self.batch_size):
            yield [tuple(int(v) for v in key) for key in keys[start : start + self.batch_size]]

    # ---- the place in the epoch ------------------------------------------------------
    def batch_taken(self) -> None:
        """Training took this pass's next batch (the DataModule's batch hook says so)."""
        if self.place is not None:
            epoch, trained = self.place
            self.place = (epoch, trained + 1)

    def state_dict(self) -> dict:
        if self.place is None:  # no pass yet: the epoch's start
            return {"epoch": self.epoch, "batch": 0}
        epoch, trained = self.place
        if trained >= (self.epoch_length() or len(self)):  # done: the next epoch, its start
            return {"epoch": epoch + 1, "batch": 0}
        return {"epoch": epoch, "batch": trained}

    def load_state_dict(self, state: dict) -> None:
        self.resume = (int(state["epoch"]), int(state["batch"]))


class ResumableLoader(DataLoader):
    """A DataLoader over ``batch_sampler=EpochBatches(...)`` that saves and restores its place
    in the epoch (Lightning counts a loader with ``state_dict``/``load_state_dict`` as
    resumable and keeps its state in every checkpoint)."""

    def __init__(self, *args, batch_sampler: EpochBatches, **kwargs):
        super().__init__(*args, batch_sampler=batch_sampler, **kwargs)

    def state_dict(self) -> dict:
        return self.batch_sampler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.batch_sampler.load_state_dict(state)
