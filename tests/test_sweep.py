"""vrnn-sweep: every sweep YAML is a valid W&B sweep whose runs are valid vrnn-fit configs;
the agent's command; hyperband on metrics CSVs; a local sweep of two tiny runs and its table."""

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import TINY_SETTINGS
from rich.console import Console

import vrnn_lightning.local_sweep as sweep_mod
from vrnn_lightning.local_sweep import (
    LocalRun,
    LocalSweep,
    SweepError,
    agent_command,
    fit_config,
    load_sweep,
    metric_history,
    sweeps,
)
from vrnn_lightning.sweep import main
from vrnn_lightning.variant import VARIANTS

REPO = Path(__file__).resolve().parents[1]
SWEEPS = sorted((REPO / "sweeps").glob("*.yaml"))
TINY = {**TINY_SETTINGS, "eval.batch_size": 4}  # conf/debug.yaml as sweep parameters


def test_every_dataset_config_has_a_variants_sweep_and_each_family_a_search():
    names = {p.stem for p in SWEEPS}
    for conf in ("demo", "timit", "blizzard", "onomatopoeia", "accent", "iamondb", "fsdd"):
        assert f"{conf}_variants" in names
    assert "gw_online_variants" in names
    assert {"timit_search", "iamondb_search"} <= names  # speech and handwriting


@pytest.mark.parametrize("path", SWEEPS, ids=[p.name for p in SWEEPS])
def test_sweep_yaml_is_valid_and_every_run_it_proposes_is_a_vrnn_fit_config(path, monkeypatch):
    monkeypatch.chdir(REPO)  # the commands name conf/*.yaml relative to the checkout
    raw = yaml.safe_load(path.read_text())
    assert sweeps.schema_violations_from_proposed_config(raw) == []
    config = load_sweep(path)
    assert config["name"] == path.stem
    assert config["metric"] == {"name": "val/elbo", "goal": "maximize"}
    assert config["command"][:3] == [
        "vrnn-fit",
        "--config",
        f"conf/{path.stem.rsplit('_', 1)[0]}.yaml",
    ]
    engine = sweeps.SweepConfig(raw)
    grid = raw["method"] == "grid"
    runs, out_dirs = [], set()
    while len(runs) < (100 if grid else 3):
        proposal = sweeps.next_run(engine, runs)
        if proposal is None:
            break
        run_id = f"run{len(runs)}"
        command = agent_command(config, proposal.config, Path("unused.json"))
        cfg = fit_config(command, run_id)
        assert cfg["name"].endswith(run_id), "each run names its folder after its W&B run id"
        assert cfg["ckpt_path"] == "last", "a preempted run resumes"
        out_dirs.add(cfg["out_dir"])
        runs.append(sweeps.SweepRun(name=run_id, config=proposal.config, state="finished"))
    assert len(out_dirs) == len(runs)
    if grid:
        # every combination once, over at least 3 seeds
        varied = [spec["values"] for spec in raw["parameters"].values() if "values" in spec]
        assert len(raw["parameters"]["seed"]["values"]) >= 3
        assert len(runs) == math.prod(len(values) for values in varied)
        settings = {k for k, spec in raw["parameters"].items() if "values" in spec} - {"seed"}
        if settings == {"model.variant"}:  # a comparison of the variants: all six
            assert {r.config["model.variant"]["value"] for r in runs} == set(VARIANTS)
        else:  # a comparison of settings (objectives, learning rates), for some variants
            assert settings - {"model.variant"}
    else:
        assert raw["early_terminate"]["type"] == "hyperband"
        lrs = [r.config["optim.lr"]["value"] for r in runs]
        assert len(set(lrs)) == len(lrs) and all(1e-5 < lr < 1e-2 for lr in lrs)


def test_without_local_it_checks_the_file_and_lists_every_grid_run(capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    assert main(["sweeps/demo_variants.yaml"]) == 0
    out = capsys.readouterr().out
    commands = [line for line in out.splitlines() if "vrnn-fit --config conf/demo.yaml" in line]
    assert len(commands) == 18 and "valid, 18 run(s)" in out.replace("\n", " ")


def test_the_command_is_the_one_the_wandb_agent_builds(tmp_path, monkeypatch):
    monkeypatch.setenv("MY_CONF", "conf/demo.yaml")
    args = {"model.variant": {"value": "rnn_gauss"}, "seed": {"value": 2}}
    sweep = {"program": "vrnn-fit", "command": ["${env}", "${interpreter}", "-m", "x", "${args}"]}
    assert agent_command(sweep, args, tmp_path / "a.json") == [
        "/usr/bin/env", "python", "-m", "x", "--model.variant=rnn_gauss", "--seed=2",
    ]  # fmt: skip
    sweep["command"] = ["${program}", "--config", "${envvar:MY_CONF}", "${args_no_hyphens}"]
    assert agent_command(sweep, args, tmp_path / "a.json") == [
        "vrnn-fit", "--config", "conf/demo.yaml", "model.variant=rnn_gauss", "seed=2",
    ]  # fmt: skip
    assert sweep["command"][2] == "${envvar:MY_CONF}", "the sweep config is left as it was"
    sweep["command"] = ["${program}", "${args_json_file}"]
    assert agent_command(sweep, args, tmp_path / "a.json") == ["vrnn-fit", str(tmp_path / "a.json")]
    assert json.loads((tmp_path / "a.json").read_text()) == {
        "model.variant": "rnn_gauss",
        "seed": 2,
    }
    with pytest.raises(SweepError, match="program"):
        agent_command({"command": ["${program}"]}, args, tmp_path / "a.json")


def test_each_argument_macro_expands_as_the_wandb_agents_own_helper():
    # the agent's helper is internal to wandb (wandb.sdk): compared here, never used
    helpers = pytest.importorskip("wandb.sdk.launch.sweeps.utils")
    from vrnn_lightning.sweep_command import argument_forms

    args = {"a": {"value": 1}, "flag": {"value": True}, "off": {"value": False}}
    args["x.y"] = {"value": "s t"}
    theirs = helpers.create_sweep_command_args({"args": args})
    for macro, expansion in argument_forms(args).items():
        assert expansion == theirs[macro], macro


@pytest.mark.parametrize(
    "change,expected",
    [
        ({"method": "gird"}, "method"),
        ({"parameters": {"model.variant": {"valuez": ["rnn_gauss"]}}}, "parameters"),
        ({"metric": None}, "metric"),
    ],
)
def test_an_invalid_sweep_file_exits_2_naming_the_file(tmp_path, capsys, change, expected):
    config = yaml.safe_load((REPO / "sweeps" / "demo_variants.yaml").read_text())
    config.update(change)
    if change.get("metric", 1) is None:
        del config["metric"]
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    assert main([str(bad), "--local", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml" in err and expected in err
    assert not (tmp_path / "out").exists()


def test_a_proposed_run_vrnn_fit_would_refuse_is_refused_naming_the_key(monkeypatch):
    monkeypatch.chdir(REPO)
    command = ["vrnn-fit", "--config", "conf/demo.yaml", "model.zdim=3"]
    with pytest.raises(SweepError, match="model.zdim"):
        fit_config(command, "abc")
    with pytest.raises(SweepError, match="logger.wandb.mode"):
        fit_config(command[:3] + ["logger.wandb.mode=online"], "abc")


def _write_metrics(run_dir: Path, version: int, rows: list[tuple[int, float]]) -> None:
    path = run_dir / "csv" / f"version_{version}" / "metrics.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["epoch,step,train/loss,val/elbo"]
    for step, value in rows:
        lines += [f"0,{step},1.0,", f"0,{step},,{value}"]
    path.write_text("\n".join(lines) + "\n0,99,1.")  # the last row is still being written


# a grid of three seeds under hyperband: runs compared at 2 validations, eta 2
HYPERBAND = {
    "name": "hb",
    "method": "grid",
    "metric": {"name": "val/elbo", "goal": "maximize"},
    "early_terminate": {"type": "hyperband", "min_iter": 2, "eta": 2},
    "parameters": {"seed": {"values": [0, 1, 2]}},
}


def test_metric_history_reads_resumed_versions_and_hyperband_stops_the_worse_run(tmp_path):
    good, mid, bad = tmp_path / "good", tmp_path / "mid", tmp_path / "bad"
    _write_metrics(good, 0, [(10, -100.0), (20, -90.0)])
    _write_metrics(good, 1, [(20, -80.0), (30, -70.0)])  # resumed: step 20 again
    _write_metrics(mid, 0, [(10, -150.0), (20, -140.0), (30, -130.0)])
    _write_metrics(bad, 0, [(10, -200.0), (20, -190.0), (30, -180.0)])
    assert [h["val/elbo"] for h in metric_history(good, "val/elbo")] == [-100.0, -80.0, -70.0]

    config = HYPERBAND
    runs = [
        LocalRun(d.name, {"seed": {"value": i}}, [], str(d), "x", "rnn_gauss", i, state="running")
        for i, d in enumerate([good, mid, bad])
    ]
    for run in runs:
        run.history = metric_history(run.out_dir, "val/elbo")
    engine_runs = LocalSweep(tmp_path, config, runs).sweep_runs()
    stop = sweeps.stop_runs(sweeps.SweepConfig(config), engine_runs)
    # at the band of 2 validations: -80 and -140 are the better half, -190 is not
    assert [r.name for r in stop] == ["bad"]


class FakeProcess:
    """A run's process as the runner sees it: running until told to exit."""

    def __init__(self):
        self.code, self.signals = None, []

    def poll(self):
        return self.code

    def terminate(self):
        self.signals.append("TERM")

    def kill(self):
        self.signals.append("KILL")


def test_the_runner_stops_what_hyperband_says_and_records_it_as_killed(tmp_path):
    config = HYPERBAND
    runs = []
    for i, (name, value) in enumerate([("good", -80.0), ("mid", -140.0), ("bad", -190.0)]):
        _write_metrics(tmp_path / name, 0, [(10, value - 10), (20, value)])
        runs.append(LocalRun(name, {"seed": {"value": i}}, [], str(tmp_path / name), "x", "v", i))
        runs[-1].state = "running" if name == "bad" else "finished"
        runs[-1].history = metric_history(tmp_path / name, "val/elbo")
    sweep = LocalSweep(tmp_path / "sweep", config, runs)
    runner = sweep_mod.Runner(sweep, cap=None, jobs=1, poll=0, console=Console(quiet=True))
    bad = runner.procs["bad"] = FakeProcess()
    runner.watch()
    assert bad.signals == ["TERM"] and runs[2].stopped
    runner.kill_delay = 0  # still running after the delay: killed, as the agent does
    runner.watch()
    assert bad.signals == ["TERM", "KILL"]
    bad.code = -9
    runner.watch()
    assert runs[2].state == "killed" and "bad" not in runner.procs
    saved = json.loads((tmp_path / "sweep" / "state.json").read_text())
    assert [r["state"] for r in saved["runs"]] == ["finished", "finished", "killed"]


def test_a_run_stopped_by_sigterm_on_its_own_is_preempted_and_a_rerun_resumes_it(tmp_path):
    # vrnn-fit exits 143 when a scheduler's SIGTERM stops it: resumable, not finished
    runs = [LocalRun("r0", {"seed": {"value": 0}}, ["vrnn-fit"], str(tmp_path / "r0"), "x", "v", 0)]
    runs[0].state = "running"
    sweep = LocalSweep(tmp_path / "sweep", HYPERBAND, runs)
    runner = sweep_mod.Runner(sweep, cap=1, jobs=1, poll=0, console=Console(quiet=True))
    runner.resume = []  # the run is running now, not left behind
    runner.procs["r0"] = FakeProcess()
    runner.procs["r0"].code = 143
    runner.watch()
    reloaded = LocalSweep.open(tmp_path / "sweep")
    assert [(r.state, r.exitcode) for r in reloaded.runs] == [("preempted", 143)]
    again = sweep_mod.Runner(reloaded, cap=1, jobs=1, poll=0, console=Console(quiet=True))
    assert again.propose().id == "r0"


def test_an_interrupted_sweep_leaves_its_runs_preempted_and_a_rerun_resumes_them(
    tmp_path, monkeypatch
):
    config = {
        "name": "resume",
        "method": "grid",
        "metric": {"name": "val/elbo", "goal": "maximize"},
        "parameters": {"seed": {"values": [0, 1]}},
    }
    runs = [LocalRun("r0", {"seed": {"value": 0}}, ["vrnn-fit"], str(tmp_path / "r0"), "x", "v", 0)]
    runs[0].state = "running"  # as a killed runner leaves it in state.json
    sweep = LocalSweep(tmp_path / "sweep", config, runs)
    runner = sweep_mod.Runner(sweep, cap=1, jobs=1, poll=0, console=Console(quiet=True))
    fake = FakeProcess()
    fake.wait = lambda timeout=None: fake.signals.append("WAIT")

    def launch(run):
        runner.procs[run.id] = fake
        run.state = "running"

    def ctrl_c(seconds):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "launch", launch)
    monkeypatch.setattr(sweep_mod.time, "sleep", ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        runner.run()  # the left-behind run is relaunched first (cap=1: no new proposal)
    assert fake.signals == ["TERM", "WAIT"]
    reloaded = LocalSweep.open(tmp_path / "sweep")
    assert [r.state for r in reloaded.runs] == ["preempted"]
    again = sweep_mod.Runner(reloaded, cap=1, jobs=1, poll=0, console=Console(quiet=True))
    assert again.propose().id == "r0" and again.propose() is None


def _tiny_sweep(tmp_path: Path) -> Path:
    params = {k: {"value": v} for k, v in TINY.items()}
    params["model.variant"] = {"values": ["rnn_gauss", "vrnn_gauss"]}
    params["data.cache_dir"] = {"value": str(tmp_path / "cache")}
    params["out_dir"] = {"value": str(tmp_path / "runs") + "/${oc.env:WANDB_RUN_ID}"}
    config = {
        "name": "tiny",
        "program": "vrnn-fit",
        "method": "grid",
        "metric": {"name": "val/elbo", "goal": "maximize"},
        "parameters": params,
        "command": ["${program}", "--config", "conf/demo.yaml", "${args_no_hyphens}"],
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.slow
def test_a_local_sweep_runs_writes_table1_and_a_rerun_does_no_work(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    out = tmp_path / "sweep"
    args = [str(_tiny_sweep(tmp_path)), "--local", "--out", str(out), "--poll", "0.5"]
    # key=value after the options: applied to every run
    assert main([*args, "--iw-samples", "3", "sample.steps=3"]) == 0

    state = json.loads((out / "state.json").read_text())
    assert sorted(r["variant"] for r in state["runs"]) == ["rnn_gauss", "vrnn_gauss"]
    assert all(r["state"] == "finished" and r["exitcode"] == 0 for r in state["runs"])
    run_dirs = [Path(r["out_dir"]) for r in state["runs"]]
    assert sorted(run_dirs) == sorted(tmp_path / "runs" / r["id"] for r in state["runs"])
    assert all(len(r["history"]) == 2 for r in state["runs"]), "one val/elbo per epoch"
    for d in run_dirs:
        assert yaml.safe_load((d / "config.yaml").read_text())["sample"]["steps"] == 3

    md = (out / "table1.md").read_text()
    rows = {
        line.split("|")[1].strip(): line.split("|")[2].strip() for line in md.splitlines()[4:10]
    }
    assert md.splitlines()[2] == "| model | synthetic_speech |"
    assert list(rows) == list(VARIANTS)
    assert not rows["rnn_gauss"].startswith(">=") and math.isfinite(float(rows["rnn_gauss"]))
    parts = rows["vrnn_gauss"].split(" / ")  # each "NAME >= value": no IWAE reads as "≈"
    names = [p.split(" >= ")[0] for p in parts]
    assert names == ["ELBO", "IWAE(3)", "SMC(3)"], parts  # K = 3 below
    assert all(math.isfinite(float(p.split(" >= ")[1])) for p in parts)
    assert all(rows[v] == "–" for v in VARIANTS if v not in ("rnn_gauss", "vrnn_gauss"))

    with open(out / "table1.csv", newline="") as f:
        cells = {r["variant"]: r for r in csv.DictReader(f)}
    assert set(cells) == {"rnn_gauss", "vrnn_gauss"}
    for variant, cell in cells.items():
        assert cell["dataset"] == "synthetic_speech" and cell["n_runs"] == "1"
        assert cell["iw_samples"] == "3" and cell["elbo_std"] == ""
        values = [float(cell[f"{e}_mean"]) for e in ("elbo", "iwae", "smc", "paper_estimate")]
        assert all(math.isfinite(v) for v in values)
        assert f"{values[0]:.1f}" in rows[variant]
    rnn = [
        float(cells["rnn_gauss"][f"{e}_mean"]) for e in ("elbo", "iwae", "smc", "paper_estimate")
    ]
    assert rnn[0] == rnn[1] == rnn[2] == rnn[3], "rnn_*: all are the exact log-likelihood"

    # a rerun launches nothing and evaluates nothing: it rebuilds the same table
    evals = {d: (d / "sweep_eval.json").stat().st_mtime_ns for d in run_dirs}

    def no_launch(*a, **k):
        raise AssertionError("a finished sweep launched a run")

    monkeypatch.setattr(subprocess, "Popen", no_launch)
    monkeypatch.setattr(sweep_mod.subprocess, "Popen", no_launch)
    assert main([*args, "--iw-samples", "3"]) == 0
    assert json.loads((out / "state.json").read_text())["runs"] == state["runs"]
    assert {d: (d / "sweep_eval.json").stat().st_mtime_ns for d in run_dirs} == evals
    assert (out / "table1.md").read_text() == md
    assert main(["report", str(out), "--iw-samples", "3"]) == 0
    assert (out / "table1.md").read_text() == md
    # report alone evaluates with the sweep's own K (3, not the runs' eval.iw_samples)
    assert main(["report", str(out)]) == 0
    assert (out / "table1.md").read_text() == md
    assert {d: (d / "sweep_eval.json").stat().st_mtime_ns for d in run_dirs} == evals
    # the runs of an online sweep are run folders: the same table from them
    folders = [str(d) for d in run_dirs]
    assert main(["report", *folders, "--out", str(tmp_path / "r"), "--iw-samples", "3"]) == 0
    from_folders = (tmp_path / "r" / "table1.md").read_text().splitlines()
    assert from_folders[1:] == md.splitlines()[1:]


@pytest.mark.slow
def test_each_of_j_jobs_runs_torch_on_cores_over_j_threads(tmp_path, monkeypatch):
    # the child's environment as launch() builds it, and the thread count its torch takes
    for name in sweep_mod.THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert sweep_mod.job_environment({}, jobs=2, cores=8)["OMP_NUM_THREADS"] == "4"
    assert sweep_mod.job_environment({}, jobs=3, cores=2)["MKL_NUM_THREADS"] == "1"
    assert sweep_mod.job_environment({"OMP_NUM_THREADS": "3"}, 2, 8)["OMP_NUM_THREADS"] == "3"
    cores = sweep_mod.available_cores()
    config = {"name": "threads", "method": "grid", "metric": {"name": "val/elbo"},
              "parameters": {"seed": {"values": [0]}}}  # fmt: skip
    probe = "import torch; print(torch.get_num_threads())"
    run = LocalRun("t0", {}, [sys.executable, "-c", probe], str(tmp_path / "t0"), "x", "v", 0)
    sweep = LocalSweep(tmp_path / "sweep", config, [run])
    runner = sweep_mod.Runner(sweep, cap=None, jobs=2, poll=0, console=Console(quiet=True))
    runner.launch(run)
    assert runner.procs["t0"].wait(timeout=60) == 0
    log = (tmp_path / "sweep" / "logs" / "t0.log").read_text()
    assert int(log.split()[-1]) == max(1, cores // 2)


def test_help_lists_report_and_overrides(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "vrnn-sweep report" in out and "key=value" in out
