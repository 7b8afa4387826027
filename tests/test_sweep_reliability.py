"""vrnn-sweep under signals and bad state (issue 11, items 6 and 15): SIGTERM/SIGHUP stop the
runs and mark them preempted, a rerun never starts a run whose process still runs, commands
are printed shell-quoted, a corrupt state.json is an exit-2 message."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from vrnn_lightning.local_sweep import LocalRun, LocalSweep, Runner, load_sweep
from vrnn_lightning.sweep import main

REPO = Path(__file__).resolve().parents[1]
SLEEPER = "import time; time.sleep(300)"  # a run that trains for a long time


def _sweep_file(tmp_path: Path, name: str = "r", program: list[str] | None = None) -> Path:
    config = {
        "name": "rel",
        "method": "grid",
        "metric": {"name": "val/elbo", "goal": "maximize"},
        "parameters": {
            "name": {"value": name},
            "logger.wandb.mode": {"value": "disabled"},
            "out_dir": {"value": str(tmp_path / "runs" / "r")},
        },
        "command": (program or ["vrnn-fit"]) + ["--config", "conf/demo.yaml", "${args_no_hyphens}"],
    }
    path = tmp_path / "rel.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _dead(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return Path(f"/proc/{pid}/stat").is_file() and " Z " in Path(f"/proc/{pid}/stat").read_text()


def test_check_mode_prints_commands_safe_to_paste(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    evil = "x; touch pwned"
    assert main([str(_sweep_file(tmp_path, name=evil))]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "vrnn-fit" in x)
    words = shlex.split(line.split(": ", 1)[1])
    assert f"name={evil}" in words and words[0] == "vrnn-fit"


@pytest.mark.parametrize(
    "text", ['{"version": 1, "config": {', "[1, 2]", '{"version": 1}', "\x00\xff"]
)
def test_a_corrupt_state_file_is_exit_2_naming_it(tmp_path, capsys, monkeypatch, text):
    monkeypatch.chdir(REPO)
    out = tmp_path / "sweep"
    out.mkdir()
    (out / "state.json").write_text(text)
    assert main([str(_sweep_file(tmp_path)), "--local", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{out / 'state.json'}: corrupt sweep state" in err


@pytest.mark.slow  # a real runner and its run, signalled
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["TERM", "HUP"])
def test_sigterm_or_sighup_stops_the_runs_and_marks_them_preempted(tmp_path, signum):
    out = tmp_path / "sweep"
    sweep = _sweep_file(tmp_path, program=["${interpreter}", "-c", SLEEPER, "vrnn-fit"])
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    runner = subprocess.Popen(
        [sys.executable, "-m", "vrnn_lightning.sweep", str(sweep), "--local", "--out", str(out)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    pid = None
    try:
        deadline = time.monotonic() + 120
        while pid is None and time.monotonic() < deadline and runner.poll() is None:
            time.sleep(0.2)
            with contextlib.suppress(OSError, ValueError, KeyError, IndexError):
                pid = json.loads((out / "state.json").read_text())["runs"][0]["pid"]
        assert pid, runner.communicate(timeout=5)[0] if runner.poll() is not None else "no run"
        runner.send_signal(signum)
        output = runner.communicate(timeout=60)[0]
        assert runner.returncode == 128 + signum, output
        assert "marked preempted" in output
        state = json.loads((out / "state.json").read_text())
        assert [r["state"] for r in state["runs"]] == ["preempted"]
        assert _dead(pid), "the run's process outlived its runner"
    finally:
        runner.kill()
        if pid and not _dead(pid):
            os.kill(pid, signal.SIGKILL)


def test_a_rerun_refuses_a_run_whose_process_still_runs(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    out = tmp_path / "sweep"
    sweep = _sweep_file(tmp_path)
    # what a runner killed with -9 leaves: its run "running" in state.json, the process alive
    command = [sys.executable, "-c", SLEEPER, "vrnn-fit", "name=r"]
    orphan = subprocess.Popen(command)
    try:
        run = LocalRun("r1", {}, command, str(tmp_path / "runs" / "r"), "demo", "vrnn_gmm", 0)
        run.state, run.pid, run.host = "running", orphan.pid, socket.gethostname()
        LocalSweep(out, load_sweep(sweep), [run]).save()
        assert main([str(sweep), "--local", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert f"run r1: its previous process {orphan.pid} still runs" in err
        assert orphan.poll() is None, "the running process is left alone"
        assert json.loads((out / "state.json").read_text())["runs"][0]["state"] == "running"
        # a pid reused by another program is not the run's process
        run.command = [sys.executable, "-c", "other", "vrnn-fit", "name=r"]
        LocalSweep(out, load_sweep(sweep), [run]).save()
        assert Runner(LocalSweep.open(out), 1, 1, 0.1, Console(quiet=True)).resume == [run]
    finally:
        orphan.kill()
        orphan.wait()
