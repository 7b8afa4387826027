"""vrnn-sweep --jobs N on a GPU machine: each run gets its own GPU(s) in CUDA_VISIBLE_DEVICES,
a finished run's GPU goes to the next run, and the parent's CUDA_VISIBLE_DEVICES is respected.
The GPUs are faked (visible_gpus); the runs are real processes that record their environment."""

from __future__ import annotations

import sys

import pytest
from rich.console import Console

import vrnn_lightning.local_sweep as sweep_mod
from vrnn_lightning.local_sweep import LocalRun, LocalSweep, gpu_slots, visible_gpus

CONFIG = {"name": "gpus", "method": "grid", "metric": {"name": "val/elbo", "goal": "maximize"},
          "parameters": {"seed": {"values": [0]}}}  # fmt: skip
# writes its CUDA_VISIBLE_DEVICES (or <unset>) to argv[1], then sleeps argv[2] seconds
RECORD = (
    "import os, sys, time; open(sys.argv[1], 'w').write("
    "os.environ.get('CUDA_VISIBLE_DEVICES', '<unset>')); time.sleep(float(sys.argv[2]))"
)


def _sweep(tmp_path, seconds: list[float]) -> LocalSweep:
    runs = []
    for i, s in enumerate(seconds):
        command = [sys.executable, "-c", RECORD, str(tmp_path / f"r{i}.env"), str(s)]
        runs.append(LocalRun(f"r{i}", {}, command, str(tmp_path / f"r{i}"), "x", "v", i))
    return LocalSweep(tmp_path / "sweep", CONFIG, runs)  # all pending: run in order


def _recorded(tmp_path, n: int) -> list[str]:
    return [(tmp_path / f"r{i}.env").read_text() for i in range(n)]


def test_slots_split_the_gpus_and_share_them_round_robin_only_when_there_are_more_jobs():
    gpus = [str(i) for i in range(8)]
    assert gpu_slots(1, gpus) == ["0,1,2,3,4,5,6,7"]
    assert gpu_slots(2, gpus) == ["0,1,2,3", "4,5,6,7"]
    assert gpu_slots(3, gpus) == ["0,1", "2,3", "4,5"]  # G // N each, 6 and 7 idle
    assert gpu_slots(8, gpus) == gpus
    assert gpu_slots(3, ["0", "1"]) == ["0", "1", "0"]
    assert gpu_slots(4, []) == []


def test_the_parents_cuda_visible_devices_is_the_pool(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5, 6,7")
    assert visible_gpus() == ["4", "5", "6", "7"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-8a1b,MIG-2c3d")
    assert visible_gpus() == ["GPU-8a1b", "MIG-2c3d"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # hidden: a CPU sweep
    assert visible_gpus() == []
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,-1,2")  # CUDA ignores what follows -1
    assert visible_gpus() == ["1"]


def test_each_job_gets_its_own_gpus_and_a_finished_runs_gpus_go_to_the_next(tmp_path, monkeypatch):
    monkeypatch.setattr(sweep_mod, "visible_gpus", lambda: ["0", "1", "2", "3"])
    # r0 holds its slot throughout; r1, r2, r3 end quickly one after another: each new run
    # must get the slot the last one freed, never r0's GPUs
    sweep = _sweep(tmp_path, [3.0, 0.0, 0.0, 0.0])
    runner = sweep_mod.Runner(
        sweep, cap=len(sweep.runs), jobs=2, poll=0.05, console=Console(quiet=True)
    )
    runner.run()
    assert [r.state for r in sweep.runs] == ["finished"] * 4
    assert _recorded(tmp_path, 4) == ["0,1", "2,3", "2,3", "2,3"]
    assert runner.slot_of == {}  # every slot free again


def test_more_jobs_than_gpus_share_them_and_no_gpu_leaves_the_variable_unset(tmp_path, monkeypatch):
    monkeypatch.setattr(sweep_mod, "visible_gpus", lambda: ["5", "7"])
    sweep = _sweep(tmp_path, [1.0, 1.0, 1.0])
    sweep_mod.Runner(
        sweep, cap=len(sweep.runs), jobs=3, poll=0.05, console=Console(quiet=True)
    ).run()
    assert _recorded(tmp_path, 3) == ["5", "7", "5"]

    other = tmp_path / "cpu"
    other.mkdir()
    monkeypatch.setattr(sweep_mod, "visible_gpus", lambda: [])
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    sweep = _sweep(other, [0.0, 0.0])
    sweep_mod.Runner(
        sweep, cap=len(sweep.runs), jobs=2, poll=0.05, console=Console(quiet=True)
    ).run()
    assert _recorded(other, 2) == ["<unset>", "<unset>"]


@pytest.mark.parametrize("jobs", [1, 2])
def test_vrnn_sweep_on_this_machine_sees_no_gpu_it_does_not_have(jobs, monkeypatch):
    # without a GPU (CPU CI) nothing is set; with one, a slot per job
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    import torch

    n = torch.cuda.device_count()
    assert visible_gpus() == [str(i) for i in range(n)]
    assert len(gpu_slots(jobs, visible_gpus())) == (jobs if n else 0)
