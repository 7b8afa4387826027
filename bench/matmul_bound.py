"""The matmul lower bound of a training step: its matrix products, each timed alone, summed.

A step's matrix products are recorded as they are dispatched (operator, both operands'
shapes and strides, dtype; forward and backward), then each distinct product is timed on
its own, run back to back on fresh operands of the same layout, and the times are summed
with their counts. No step can be faster than that sum without changing its products: it
leaves out every elementwise pass, copy, allocation and kernel launch gap (on a GPU the
products are queued back to back, so launches overlap: the "launch-free" bound). Against a
large square matmul's rate, it is the ceiling of the step's "% of peak" at those shapes.

    from bench.matmul_bound import record_matmuls, matmul_bound
    products = record_matmuls(step)            # runs step() once
    bound = matmul_bound(products, device)     # Bound(seconds, flops, rows)
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from dataclasses import dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode

_aten = torch.ops.aten
# operator -> (index of the left operand; the right one follows it)
_PRODUCTS = {
    _aten.mm.default: 0,
    _aten.bmm.default: 0,
    _aten.addmm.default: 1,
    _aten.baddbmm.default: 1,
}


@dataclass(frozen=True)
class Product:
    """One matrix product as dispatched: (M, K) @ (K, N), or batched (B, M, K) @ (B, K, N)."""

    op: str  # "mm" or "bmm" (addmm and baddbmm: their product; the addition is not counted)
    a_shape: tuple[int, ...]
    a_stride: tuple[int, ...]
    b_shape: tuple[int, ...]
    b_stride: tuple[int, ...]
    dtype: torch.dtype

    @property
    def flops(self) -> int:
        *batch, m, k = self.a_shape
        return 2 * (batch[0] if batch else 1) * m * k * self.b_shape[-1]

    def operands(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        def make(shape, stride):
            return torch.empty_strided(shape, stride, dtype=self.dtype, device=device).normal_()

        return make(self.a_shape, self.a_stride), make(self.b_shape, self.b_stride)

    def __str__(self) -> str:
        dtype = str(self.dtype).removeprefix("torch.")
        return f"{self.op} {self.a_shape} @ {self.b_shape} {dtype}"


class _Recorder(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.products: Counter[Product] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        first = _PRODUCTS.get(func)
        if first is not None:
            a, b = args[first], args[first + 1]
            op = "bmm" if a.dim() == 3 else "mm"
            key = Product(op, tuple(a.shape), a.stride(), tuple(b.shape), b.stride(), a.dtype)
            self.products[key] += 1
        return func(*args, **(kwargs or {}))


def record_matmuls(step) -> Counter[Product]:
    """Run ``step()`` once and count the matrix products it dispatches (autograd's backward
    included: the recording mode reaches the engine's threads)."""
    recorder = _Recorder()
    with recorder:
        step()
    return recorder.products


@dataclass
class Bound:
    seconds: float  # the sum over products of count x time alone
    flops: int
    rows: list[tuple[Product, int, float]]  # (product, count, seconds alone each), slowest first

    @property
    def rate(self) -> float:
        return self.flops / self.seconds


def _seconds_each(run, a: torch.Tensor, b: torch.Tensor, calls: int, sync) -> float:
    """Seconds per call of ``calls`` back-to-back products (one wait for the device at the end:
    on a GPU the launches overlap the kernels, as they would in a captured step)."""
    sync()
    start = time.perf_counter()
    for _ in range(calls):
        run(a, b)
    sync()
    return (time.perf_counter() - start) / calls


def matmul_bound(
    products: Counter[Product], device: torch.device, min_seconds: float = 0.01, repeats: int = 5
) -> Bound:
    """Time each product alone (median of ``repeats`` timings, each of enough back-to-back
    calls to last ``min_seconds``) and sum them with their counts."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    rows = []
    for product, count in products.items():
        a, b = product.operands(device)
        run = torch.bmm if product.op == "bmm" else torch.mm
        one = _seconds_each(run, a, b, 1, sync)  # also the warm-up (kernel choice, allocator)
        calls = max(1, int(min_seconds / max(one, 1e-9)))
        alone = statistics.median(_seconds_each(run, a, b, calls, sync) for _ in range(repeats))
        rows.append((product, count, alone))
    rows.sort(key=lambda row: -row[1] * row[2])
    seconds = sum(count * alone for _, count, alone in rows)
    flops = sum(count * product.flops for product, count, _ in rows)
    return Bound(seconds, flops, rows)
