"""The training step with glibc's default allocator settings against ``reuse_freed_memory``.

vrnn_lightning/allocator.py keeps freed blocks for reuse instead of mapping each large tensor
afresh (a page fault per 4 KiB page). An allocator setting is per process, so each
measurement runs in a child process, the two settings alternating round after round (a
load change hits both alike); every child builds the model, runs one warm-up step and times
--steps steps. Printed per size and kind: median seconds per step under each setting, the
ratio, minor page faults per step, and the child's peak resident memory.

    python bench/bench_allocator.py                       # small and TIMIT sizes, ~6 min
    python bench/bench_allocator.py --sizes small --rounds 3
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

KINDS = ("naive32", "ours32", "ours_bf16")
SETTINGS = ("default", "reuse")


def child(setting: str, size: str, kind: str, steps: int) -> dict:
    """One measurement, in this (fresh) process."""
    from vrnn_lightning.allocator import reuse_freed_memory

    if setting == "reuse" and not reuse_freed_memory():
        raise SystemExit("reuse_freed_memory() did nothing here (not glibc?)")
    import torch

    from bench.bench_training import SIZES, make_step
    from vrnn_lightning.model import VRNN

    spec = SIZES[size]
    torch.manual_seed(0)
    model = VRNN("vrnn_gmm", x_dim=200, **spec["model"])
    x = torch.randn(spec["batch"], spec["steps"], 200)
    step = make_step(kind, model, x)
    step()  # warm-up
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return dict(
        seconds=statistics.median(times),
        faults=(usage.ru_minflt - faults) / steps,
        peak_mb=usage.ru_maxrss / 1024,  # KiB on Linux
    )


def measure(setting: str, size: str, kind: str, steps: int) -> dict:
    cmd = [sys.executable, __file__, "--child", setting, size, kind, str(steps)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["small", "timit"])
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=None, help="default: 10 small, 3 TIMIT")
    parser.add_argument("--child", nargs=4, metavar=("SETTING", "SIZE", "KIND", "STEPS"),
                        help=argparse.SUPPRESS)  # fmt: skip
    args = parser.parse_args()
    if args.child:
        setting, size, kind, steps = args.child
        print(json.dumps(child(setting, size, kind, int(steps))))
        return

    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"medians over {args.rounds} rounds, each a child process per setting")  # fmt: skip
    header = (
        f"{'size':6} {'kind':10} {'default s':>9} {'reuse s':>8} {'speedup':>7} "
        f"{'faults/step':>17} {'peak RSS MB':>15}"
    )
    print(header)
    print("-" * len(header))
    for size in args.sizes:
        steps = args.steps or (3 if size == "timit" else 10)
        for kind in args.kinds:
            runs = {s: [] for s in SETTINGS}
            for _ in range(args.rounds):
                for setting in SETTINGS:
                    runs[setting].append(measure(setting, size, kind, steps))
            med = {
                s: {k: statistics.median(r[k] for r in runs[s]) for k in runs[s][0]}
                for s in SETTINGS
            }
            d, r = med["default"], med["reuse"]
            print(
                f"{size:6} {kind:10} {d['seconds']:9.3f} {r['seconds']:8.3f} "
                f"{d['seconds'] / r['seconds']:6.2f}x {d['faults']:8.0f} {r['faults']:8.0f} "
                f"{d['peak_mb']:7.0f} {r['peak_mb']:7.0f}"
            )


if __name__ == "__main__":
    main()
