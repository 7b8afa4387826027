"""Training-step speed of the structured VRNN against the naive per-step reference.

For each size it times, side by side in one process and interleaved (this machine is shared
and noisy), one training step (forward, backward, Adam) of:

- ``naive fp32``: ``VRNN.forward_stepwise``, the paper's step with every network inside the
  per-step loop (the common style of public VRNN implementations);
- ``ours32``: vrnn_lightning.model.VRNN as the training loop runs it;
- ``ours32+c``: the same with model.compile=true (torch.compile of the decoder and output
  density; its one-off compile happens in the warm-up, outside the timing);
- ``ours_bf16``: VRNN under torch.autocast(bfloat16), as trainer.precision=bf16-mixed.

FLOPs are counted with torch.utils.flop_counter on one step; the machine's matmul peak is a
large fp32 (and bf16) matmul measured in the same process. Medians over --repeats. On a
machine with CUDA the same comparison runs on the GPU (timed with synchronisation).

Under each size, ``matmuls alone`` (bench/matmul_bound.py) is the ceiling of ours32 and
ours_bf16: the step's own matrix products, each timed alone at its shape and summed, so the
fastest that step could be with every other pass free; and the products that cost most.

    python bench/bench_training.py                 # small (demo) and TIMIT sizes
    python bench/bench_training.py --sizes small --repeats 7
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from bench.matmul_bound import matmul_bound, record_matmuls  # noqa: E402
from vrnn_lightning.allocator import reuse_freed_memory  # noqa: E402
from vrnn_lightning.model import VRNN  # noqa: E402

SIZES = {
    # the demo's scale
    "small": dict(
        model=dict(h_dim=256, z_dim=32, phi_x_dim=128, phi_z_dim=64, enc_dim=128,
                   prior_dim=128, dec_dim=128, mlp_layers=2, n_components=5),
        batch=32, steps=40,
    ),
    # the paper's TIMIT size (the paper's section 5): LSTM 2000, z 200, four-layer MLPs, 20-GMM
    "timit": dict(
        model=dict(h_dim=2000, z_dim=200, phi_x_dim=400, phi_z_dim=300, enc_dim=300,
                   prior_dim=300, dec_dim=400, mlp_layers=4, n_components=20),
        batch=64, steps=40,
    ),
}  # fmt: skip


# CUDA when present (the same comparison, where structure removes kernel launches), else CPU
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def matmul_peak(dtype: torch.dtype, n: int = 4096, repeats: int = 5) -> float:
    """GFLOP/s of a large square matmul: the ceiling for this machine and dtype."""
    a = torch.randn(n, n, dtype=dtype, device=DEVICE)
    b = torch.randn(n, n, dtype=dtype, device=DEVICE)
    a @ b
    best = min(_time(lambda: a @ b) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def _time(fn) -> float:
    start = time.perf_counter()
    fn()
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()  # kernels run asynchronously: wait before reading the clock
    return time.perf_counter() - start


def make_step(kind: str, model: VRNN, x: torch.Tensor):
    """One training step of ``kind`` (naive32, ours32, ours32+c, ours_bf16) as a closure."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, fused=True)  # as VRNNModule
    bf16 = kind == "ours_bf16"
    autocast = torch.autocast(DEVICE.type, dtype=torch.bfloat16) if bf16 else nullcontext()

    def step():
        with autocast:
            if kind == "naive32":
                terms = model.forward_stepwise(x)
            else:
                terms = model(x)
            loss = -(terms.log_px - terms.kl).sum(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def count_flops(step) -> int:
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def bench_size(name: str, variant: str, repeats: int) -> tuple[list[dict], dict]:
    spec = SIZES[name]
    torch.manual_seed(0)
    model = VRNN(variant, x_dim=200, **spec["model"]).to(DEVICE)
    compiled = VRNN(variant, x_dim=200, compile=True, **spec["model"]).to(DEVICE)
    compiled.load_state_dict(model.state_dict())
    x = torch.randn(spec["batch"], spec["steps"], 200, device=DEVICE)
    kinds = ("naive32", "ours32", "ours32+c", "ours_bf16")
    steps = {k: make_step(k, compiled if k == "ours32+c" else model, x) for k in kinds}
    flops = count_flops(steps["ours32"])
    for k in kinds:  # warm up (allocator, oneDNN kernels)
        steps[k]()
    # the ceilings: each kind's matrix products timed alone (recording runs one more step)
    bounds = {k: matmul_bound(record_matmuls(steps[k]), DEVICE) for k in ("ours32", "ours_bf16")}
    times = {k: [] for k in kinds}
    for _ in range(repeats):  # interleaved: load changes hit every kind alike
        for k in kinds:
            times[k].append(_time(steps[k]))
    med = {k: statistics.median(v) for k, v in times.items()}
    rows = [
        dict(size=name, variant=variant, kind=k, seconds=med[k], gflops=flops / med[k] / 1e9,
             speedup=med["naive32"] / med[k], flops=flops)
        for k in kinds
    ]  # fmt: skip
    return rows, bounds


def print_bounds(name: str, rows: list[dict], bounds: dict, peak32: float, products: int) -> None:
    """The matmuls-alone ceilings of ours32 and ours_bf16, and the costliest products."""
    step = {row["kind"]: row["seconds"] for row in rows}
    for kind, bound in bounds.items():
        gflops = bound.rate / 1e9
        print(
            f"{name:6} {kind + ' matmuls alone':26} {bound.seconds:8.3f} s {gflops:8.1f} GFLOP/s "
            f"{100 * gflops / peak32:5.0f}% of fp32 peak = {bound.seconds / step[kind]:.0%} "
            f"of the step's time"
        )
    for product, count, alone in bounds["ours32"].rows[:products]:
        rate = product.flops / alone / 1e9
        print(f"{'':6}   {count:3d} x {str(product):44} {count * alone:6.3f} s "
              f"{100 * rate / peak32:4.0f}% of peak")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["small", "timit"], choices=list(SIZES))
    parser.add_argument("--variant", default="vrnn_gmm")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument(
        "--products",
        type=int,
        default=3,
        help="how many of the costliest matrix products to list per size",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    reuse_freed_memory()  # the allocator as vrnn-fit sets it (bench/bench_allocator.py)

    peak32 = matmul_peak(torch.float32)
    peak16 = matmul_peak(torch.bfloat16)
    print(f"torch {torch.__version__} on {DEVICE}, {args.threads} threads, variant {args.variant}")
    print(f"matmul peak (4096^3): fp32 {peak32:.1f} GFLOP/s, bf16 {peak16:.1f} GFLOP/s\n")
    header = (
        f"{'size':6} {'kind':10} {'s/step':>8} {'GFLOP/s':>8} {'% fp32 peak':>11} {'vs naive':>9}"
    )
    print(header)
    print("-" * len(header))
    for name in args.sizes:
        rows, bounds = bench_size(name, args.variant, args.repeats)
        for row in rows:
            print(
                f"{row['size']:6} {row['kind']:10} {row['seconds']:8.3f} {row['gflops']:8.1f} "
                f"{100 * row['gflops'] / peak32:10.0f}% {row['speedup']:8.2f}x"
            )
        print(f"{'':6} (one step = {row['flops'] / 1e9:.1f} GFLOP, batch "
              f"{SIZES[name]['batch']} x {SIZES[name]['steps']} steps)")  # fmt: skip
        print_bounds(name, rows, bounds, peak32, args.products)


if __name__ == "__main__":
    main()
