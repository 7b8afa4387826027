"""Whole-sequence training batches of similar lengths, so that padding stays small.

The paper trained IAM-OnDB and Onomatopoeia on whole sequences, zero-padded with a mask.
Each epoch the sequences are shuffled, cut into pools of ``POOL_BATCHES`` batches, each pool
sorted by length and cut into batches, and the batches shuffled: every sequence once per
epoch, in batches whose lengths are close, in an order that changes every epoch.

Under DDP a batch is one global batch of ``batch_size * world_size`` sequences, split over
the ranks (data/resumable.py: rank r takes its r-th, (r + W)-th, ... sequences, so every
rank's lengths span the bucket's); with one process it is the plain order.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Sampler

POOL_BATCHES = 50  # batches sorted together: more, less padding; fewer, more varied batches

Key = tuple[int, int, int]  # (sequence index, first frame, number of frames), as FramesDataset


class LengthBucketSampler(Sampler[Key]):
    """Whole sequences in length-bucketed batches; seeded with (seed, epoch)."""

    def __init__(self, lengths, batch_size: int, *, world_size: int = 1, seed: int = 0):
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.batch = batch_size * world_size  # one global batch
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def order(self, epoch: int) -> np.ndarray:
        """The epoch's sequence indices, global batch after global batch."""
        g = torch.Generator().manual_seed((self.seed * 1_000_003 + epoch) % 2**63)
        order = torch.randperm(len(self.lengths), generator=g).numpy()
        pool = self.batch * POOL_BATCHES
        batches = []
        for p in range(0, len(order), pool):
            members = order[p : p + pool]
            members = members[np.argsort(self.lengths[members], kind="stable")]
            batches += [members[b : b + self.batch] for b in range(0, len(members), self.batch)]
        # a pool holds whole batches, so only the last can be short: it stays last
        full = [b for b in batches if len(b) == self.batch]
        short = [b for b in batches if len(b) < self.batch]
        shuffled = [full[k] for k in torch.randperm(len(full), generator=g).tolist()]
        return np.concatenate(shuffled + short) if batches else order

    def plan(self, epoch: int) -> np.ndarray:
        """(n, 3) keys (sequence, 0, length) of the epoch, in ``order(epoch)``."""
        order = self.order(epoch)
        return np.stack([order, np.zeros_like(order), self.lengths[order]], axis=1)

    def __iter__(self) -> Iterator[Key]:
        keys = self.plan(self.epoch)
        self.epoch += 1  # a plain PyTorch loop without set_epoch still varies per epoch
        return (tuple(int(v) for v in key) for key in keys)
