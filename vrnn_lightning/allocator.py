"""Large CPU tensors without a page fault per page: keep freed memory for the next step.

glibc's malloc (Linux's default, and PyTorch's CPU allocator underneath) serves every request
above its mmap threshold (32 MiB at most) with a fresh mmap and gives it back to the kernel on
free. Each new large tensor is then faulted in and zeroed by the kernel page by page: at the
paper's TIMIT size the GMM density's (B, T, D, K) tensors are 40 MB each, so every
out-of-place elementwise pass over them cost about 10 ms more than the same pass in place
(torch.profiler, 2026-11-30), and a training step makes dozens. ``reuse_freed_memory``
turns mmap off for malloc (M_MMAP_MAX = 0) and raises the trim threshold, so freed blocks
stay in the heap and the next step's tensors of the same sizes reuse them: what PyTorch's
CPU performance guide gets by preloading tcmalloc or jemalloc, with the C library's own
switch (mallopt(3)). The price: memory freed inside the heap is kept for reuse, not returned
(the resident size stays at the peak a run reached instead of falling after each step).

vrnn-fit, vrnn-eval and vrnn-sample call it first; ``VRNN_MALLOC=default`` in the
environment keeps the C library's defaults. Elsewhere (macOS, musl) it does nothing.
"""

from __future__ import annotations

import ctypes
import os
import sys

# mallopt(3) parameters (glibc's malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
# free memory at the heap's top beyond this goes back to the kernel (mallopt takes an int)
_TRIM_THRESHOLD = 2**31 - 1

OPT_OUT = "VRNN_MALLOC"  # =default keeps the C library's allocator settings


def reuse_freed_memory() -> bool:
    """Make glibc keep freed blocks for reuse (see the module docstring). True when set."""
    if os.environ.get(OPT_OUT, "").lower() == "default":
        return False
    libc = glibc()
    if libc is None:
        return False
    return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(
        libc.mallopt(M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
    )


def glibc() -> ctypes.CDLL | None:
    """The process's C library when it is glibc (mallopt's parameters are glibc's), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)  # the symbols already loaded into this process
    except OSError:
        return None
    if not hasattr(libc, "gnu_get_libc_version") or not hasattr(libc, "mallopt"):
        return None  # musl (Alpine) or another C library
    return libc
