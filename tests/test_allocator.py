"""vrnn_lightning/allocator.py: large tensors reuse freed memory instead of faulting it in."""

import contextlib
import json
import os
import subprocess
import sys
import textwrap

import pytest
from conftest import DEBUG_CONFIG

from vrnn_lightning import allocator, evaluate, fit, sample

# A child process allocates and fills a 64 MiB tensor 24 times (as a training step makes its
# large tensors anew each step) and reports the median minor page faults of the last 16.
# (glibc's heap grows over the first four to seven, and now and then later when other
# allocations sit between the blocks: the median is what a long run sees at each step.)
CHILD = textwrap.dedent(
    """
    import json, resource, statistics, sys
    import torch
    from vrnn_lightning.allocator import reuse_freed_memory
    applied = reuse_freed_memory() if sys.argv[1] == "reuse" else False
    faults = []
    for _ in range(24):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        torch.empty(16 * 2**20).fill_(1.0)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    print(json.dumps(dict(applied=applied, faults_per_tensor=statistics.median(faults[8:]))))
    """
)
PAGES = 64 * 2**20 // 4096  # pages in one 64 MiB tensor


def run_child(setting: str, **env) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, setting],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


needs_glibc = pytest.mark.skipif(allocator.glibc() is None, reason="glibc's mallopt only")


@needs_glibc
def test_default_settings_fault_in_every_page_of_each_new_large_tensor():
    # what the change is for: without it each 64 MiB tensor costs a fault per page
    result = run_child("default")
    assert result["faults_per_tensor"] > 0.9 * PAGES, result


@needs_glibc
def test_reuse_freed_memory_serves_the_next_large_tensor_without_faults():
    result = run_child("reuse")
    assert result["applied"] is True
    assert result["faults_per_tensor"] < 0.05 * PAGES, result


@needs_glibc
def test_the_environment_can_keep_the_c_librarys_defaults():
    result = run_child("reuse", VRNN_MALLOC="default")
    assert result["applied"] is False
    assert result["faults_per_tensor"] > 0.9 * PAGES, result


@pytest.mark.parametrize(
    "command, argv",
    [
        (fit, ["--config", str(DEBUG_CONFIG), "--print-config"]),
        (evaluate, ["--ckpt", "missing.ckpt", "--print-config"]),
        (sample, ["--ckpt", "missing.ckpt", "--print-config"]),
    ],
    ids=["vrnn-fit", "vrnn-eval", "vrnn-sample"],
)
def test_the_compute_commands_set_it_before_anything_else(command, argv, monkeypatch):
    calls = []
    monkeypatch.setattr(command, "reuse_freed_memory", lambda: calls.append(True))
    with contextlib.suppress(SystemExit):  # a missing checkpoint may end it: it comes after
        command.main(argv)
    assert calls == [True]
