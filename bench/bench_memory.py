"""Peak memory of one training step against the sequence length T: it should be linear.

Each T runs in a fresh process (so one run's peak cannot hide another's) that builds the
model, then takes one training step (forward, backward, Adam); the figure is the peak
resident memory during the step minus the resident memory before it. A least-squares line
through the points gives the slope (MB per frame) and how well a line fits (R^2).

    python bench/bench_memory.py [--size timit|small] [--lengths 40 80 160]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere


def one_step(size: str, steps: int, variant: str) -> float:
    """Peak RSS growth (MB) of one training step; runs in the child process."""
    import torch

    from bench.bench_training import SIZES
    from vrnn_lightning.model import VRNN

    spec = SIZES[size]
    torch.manual_seed(0)
    model = VRNN(variant, x_dim=200, **spec["model"])
    opt = torch.optim.Adam(model.parameters())
    x = torch.randn(spec["batch"], steps, 200)
    # Adam's state exists after the first step: take one small step first so that the
    # measured step allocates only what depends on T
    terms = model(x[:, :2])
    (-(terms.log_px - terms.kl).sum()).backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    terms = model(x)
    (-(terms.log_px - terms.kl).sum(1).mean()).backward()
    opt.step()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (peak - before) / 1024  # ru_maxrss is in KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="timit", choices=["small", "timit"])
    parser.add_argument("--lengths", type=int, nargs="+", default=[40, 80, 160])
    parser.add_argument("--variant", default="vrnn_gmm")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(one_step(args.size, args.child, args.variant)))
        return

    mbs = []
    for steps in args.lengths:
        out = subprocess.run(
            [sys.executable, __file__, "--size", args.size, "--variant", args.variant,
             "--child", str(steps)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        mbs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    lengths = np.array(args.lengths, dtype=float)
    slope, intercept = np.polyfit(lengths, mbs, 1)
    fit = slope * lengths + intercept
    r2 = 1 - np.sum((mbs - fit) ** 2) / np.sum((mbs - np.mean(mbs)) ** 2)
    print(f"peak memory of one training step, {args.variant} at the {args.size} size")
    print(f"{'T (frames)':>10} {'peak MB':>9} {'MB / frame':>11}")
    for steps, mb in zip(args.lengths, mbs, strict=True):
        print(f"{steps:10d} {mb:9.1f} {mb / steps:11.2f}")
    print(f"linear fit: {slope:.2f} MB per frame + {intercept:.1f} MB, R^2 = {r2:.4f}")


if __name__ == "__main__":
    main()
