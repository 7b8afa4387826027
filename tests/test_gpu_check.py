"""bench/gpu_check.sh: without CUDA it runs its quick CPU fallback end to end."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # a whole (tiny) run: about 20 s on a quiet 2-core machine
def test_gpu_check_without_cuda_runs_the_cpu_fallback_of_every_part():
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", PYTHON=sys.executable)
    done = subprocess.run(
        ["bash", str(REPO / "bench" / "gpu_check.sh")],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    out = done.stdout
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "quick CPU fallback" in out
    for mode in ("naive fp32", "eager fp32", "naive bf16", "eager bf16"):
        assert f"  {mode} " in out, mode
    # each precision's launch-free lower bound (its recorded products, whose FLOPs the script
    # checks against the step's counted FLOPs), and each eager step against it
    for precision in ("fp32", "bf16"):
        assert f"matmul bound {precision}: " in out, precision
        eager = next(line for line in out.splitlines() if f"  eager {precision} " in line)
        assert float(eager.split()[-1].rstrip("x")) > 0, eager  # (no timing claim at tiny sizes)
    assert "IWAE / (K x ELBO)" in out
    assert "real-time factor" in out
    assert "whole run, training only" in out and "6 steps" in out
