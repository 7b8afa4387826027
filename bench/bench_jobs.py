"""Throughput of concurrent training jobs, with and without a thread count per job.

What ``vrnn-sweep --local --jobs J`` (or a run beside a data preparation) does to a machine:
J processes each run the bare training step of the demo-sized VRNN-GMM (forward, backward,
fused Adam; h 256, batch 32 x 40) for --seconds, and the total steps per second is printed:

- one job alone, torch on every core (the baseline);
- J jobs, each on every core (what --jobs did before: J threads per core, spinning);
- J jobs, each on max(1, cores // J) threads (what --jobs does now: local_sweep.job_environment).

    python bench/bench_jobs.py [--jobs 2] [--seconds 20]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere
from vrnn_lightning.local_sweep import (  # noqa: E402
    THREAD_VARIABLES,
    available_cores,
    job_environment,
)


def worker(seconds: float, size: str) -> None:
    """One job: train steps for ``seconds`` after a warm-up; print 'steps seconds threads'."""
    import torch

    from bench.bench_training import SIZES, make_step
    from vrnn_lightning.model import VRNN

    spec = SIZES[size]
    torch.manual_seed(0)
    model = VRNN("vrnn_gmm", x_dim=200, **spec["model"])
    step = make_step("ours32", model, torch.randn(spec["batch"], spec["steps"], 200))
    step()
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step()
        steps += 1
    print(steps, time.perf_counter() - start, torch.get_num_threads())


def run_jobs(n: int, env: dict, seconds: float, size: str) -> tuple[float, list[float], int]:
    """Start ``n`` jobs at once; (total steps/s, each job's s/step, threads per job)."""
    command = [sys.executable, __file__, "--worker", "--seconds", str(seconds), "--size", size]
    procs = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True) for _ in range(n)
    ]
    results = []
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode:
            raise SystemExit(f"a job failed (exit {proc.returncode})")
        steps, elapsed, threads = out.split()
        results.append((int(steps), float(elapsed), int(threads)))
    total = sum(steps / elapsed for steps, elapsed, _ in results)
    return total, [elapsed / max(steps, 1) for steps, elapsed, _ in results], results[0][2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=20.0, help="timed per job")
    parser.add_argument("--size", default="small", help="a bench_training size")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.seconds, args.size)
        return
    cores = available_cores()
    every_core = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}
    every_core.update(dict.fromkeys(THREAD_VARIABLES, str(cores)))
    shared = job_environment(
        {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}, args.jobs
    )
    print(f"{cores} cores, {args.jobs} jobs, {args.seconds:g} s each, size {args.size}\n")
    header = f"{'setting':34} {'threads/job':>11} {'s/step each':>22} {'steps/s total':>14}"
    print(header)
    print("-" * len(header))
    rows = [
        ("one job alone", 1, every_core),
        (f"{args.jobs} jobs, every core each (before)", args.jobs, every_core),
        (f"{args.jobs} jobs, cores // jobs each (now)", args.jobs, shared),
    ]
    totals = []
    for label, n, env in rows:
        total, per_step, threads = run_jobs(n, env, args.seconds, args.size)
        totals.append(total)
        each = " ".join(f"{t:.3f}" for t in per_step)
        print(f"{label:34} {threads:11d} {each:>22} {total:14.2f}")
    print(f"\n{args.jobs} jobs now vs one job alone: {totals[2] / totals[0]:.2f}x the throughput; "
          f"vs before: {totals[2] / totals[1]:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
