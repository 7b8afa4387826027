"""What a process holds: resident memory and live tensors, for leak tests and the soak benchmark."""

from __future__ import annotations

import gc
import os
from collections.abc import Callable

import lightning as L
import torch

from .allocator import glibc


def resident_mb() -> float:
    """This process's resident set size in MiB (Linux /proc; 0 where that is missing)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
    except OSError:
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def held_mb() -> float:
    """Resident memory after glibc returns its free heap pages (malloc_trim): the memory the
    process holds. Raw resident memory swings by tens of MB from step to step as freed
    buffers are kept or returned; this stays within 0.1 MB over a training loop, so growth
    in it is memory that something keeps. Equals resident_mb() where there is no glibc."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)
    return resident_mb()


_MALLOC_TRIM = getattr(glibc(), "malloc_trim", None)  # None where not glibc (macOS, musl)


def peak_resident_mb(run: Callable[[], object]) -> float | None:
    """The peak resident memory of ``run()`` above what the process held before it, in MiB:
    the free heap is returned first (malloc_trim) and the kernel's peak reset to the present
    (/proc/self/clear_refs), so nothing before the call counts. None (``run`` still runs)
    where Linux's /proc cannot do that."""
    gc.collect()
    held_mb()
    try:
        with open("/proc/self/clear_refs", "w") as f:  # VmHWM := VmRSS
            f.write("5")
        before = _status_kb("VmRSS")
    except (OSError, KeyError):
        run()
        return None
    run()
    return (_status_kb("VmHWM") - before) / 1024


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        values = dict(line.split(":", 1) for line in f if ":" in line)
    return int(values[field].split()[0])


def live_tensors() -> int:
    """Tensors reachable by Python after a full garbage collection (exact, unlike memory)."""
    gc.collect()
    return sum(1 for obj in gc.get_objects() if issubclass(type(obj), torch.Tensor))


class MemoryProbe(L.Callback):
    """Records (step, resident MiB, CUDA MiB allocated, held MiB) every ``every`` training
    steps (held: after malloc_trim, see ``held_mb``), and
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
            raw = resident_mb()
            self.samples.append((step, raw, cuda, held_mb()))
        if step in self.count_tensors_at and step not in self.tensors:
            self.tensors[step] = live_tensors()
