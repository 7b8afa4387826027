"""What a process holds: resident memory and live tensors, for leak tests and the soak benchmark."""

from __future__ import annotations

import gc
import os

import lightning as L
import torch


def resident_mb() -> float:
    """This process's resident set size in MiB (Linux /proc; 0 where that is missing)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
    except OSError:
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def live_tensors() -> int:
    """Tensors reachable by Python after a full garbage collection (exact, unlike memory)."""
    gc.collect()
    return sum(1 for obj in gc.get_objects() if issubclass(type(obj), torch.Tensor))


class MemoryProbe(L.Callback):
    """Records (step, resident MiB, CUDA MiB allocated) every ``every`` training steps, and
    the live tensor count at the steps in ``count_tensors_at`` (a full gc, so only a few)."""

    def __init__(self, every: int = 10, count_tensors_at: tuple[int, ...] = ()):
        self.every = every
        self.count_tensors_at = set(count_tensors_at)
        self.samples: list[tuple[int, float, float]] = []
        self.tensors: dict[int, int] = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        step = trainer.global_step
        if step % self.every == 0:
            cuda = torch.cuda.memory_allocated() / 2**20 if torch.cuda.is_available() else 0.0
            self.samples.append((step, resident_mb(), cuda))
        if step in self.count_tensors_at and step not in self.tensors:
            self.tensors[step] = live_tensors()
