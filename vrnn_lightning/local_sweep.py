"""A W&B sweep YAML run on this machine with W&B's own sweep engine (what vrnn-sweep runs).

Online, W&B runs the same file: ``wandb sweep FILE`` then ``wandb agent ENTITY/PROJECT/ID``.
Locally, the ``sweeps`` package (the engine behind W&B's sweep server) validates the file,
proposes runs (grid, random, bayes) and picks the runs hyperband stops. Each run is the
subprocess the W&B agent would start: the command is built from ``command`` by the agent's own
helpers, WANDB_RUN_ID is set to the run's id, and W&B logging stays offline or disabled (as the
run's config says; online is refused). A run's val/elbo history is read from its metrics CSV
while it runs (hyperband) and when it ends. The sweep's state is OUT/state.json, so a rerun
continues: finished runs are skipped and runs an interrupted invocation left behind resume.
At the end every finished run's best checkpoint is evaluated and the Table 1 report written
(report.py): OUT/table1.md, OUT/table1.csv, OUT/runs.csv.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import shlex
import signal
import socket
import string
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException
from rich.console import Console

with warnings.catch_warnings():  # the package's pydantic v1-style Config warns on import
    warnings.simplefilter("ignore")
    import sweeps
    from sweeps.config.schema import validator as schema_validator

from .cli import parse_run_args
from .config import ConfigError, load_config
from .metrics_csv import metric_history
from .report import (
    ReportError,
    RunResult,
    evaluate_run,
    folder_result,
    model_row,
    rich_table,
    write_report,
)
from .sweep_command import SweepError, agent_command

STATE_FILE = "state.json"
STATE_VERSION = 1
FIT_PROGRAMS = ("vrnn-fit", "vrnn_lightning.fit")
# parameters that name or place a run rather than set it up: runs that differ only in these
# (and the seed) are seeds of one setting in the report
NOT_A_SETTING = ("seed", "name", "out_dir", "ckpt_path")
ACTIVE = ("pending", "running", "preempting", "preempted")  # states a rerun resumes
RUN_ID_ALPHABET = string.ascii_lowercase + string.digits  # what W&B's own run ids use


def generate_id(length: int = 8) -> str:
    """A new run id, as W&B makes them (8 letters and digits)."""
    return "".join(secrets.choice(RUN_ID_ALPHABET) for _ in range(length))


# what OpenMP, MKL and OpenBLAS read for their thread counts (torch's intra-op threads among them)
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def available_cores() -> int:
    """The cores this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def job_environment(base: dict, jobs: int, cores: int | None = None) -> dict:
    """``base`` with each of ``jobs`` concurrent runs given max(1, cores // jobs) threads.

    Every run's torch would otherwise start one thread per core: J runs then put J threads on
    every core, and OpenMP threads spin against each other (on 2 cores, two runs on 2 threads
    each made 3.8 steps/s together, on 1 thread each 12.2). A thread count the user set
    (OMP_NUM_THREADS in the environment) is kept. DataLoader workers need nothing here: torch
    puts each worker's own torch on one thread.
    """
    env = dict(base)
    if "OMP_NUM_THREADS" in env:
        return env
    threads = str(max(1, (cores or available_cores()) // jobs))
    env.update(dict.fromkeys(THREAD_VARIABLES, threads))
    return env


def visible_gpus() -> list[str]:
    """The GPUs this process may hand to its runs, as CUDA_VISIBLE_DEVICES entries: the
    parent's own CUDA_VISIBLE_DEVICES when set (indices, GPU-/MIG- UUIDs), else 0..n-1 for
    the n GPUs torch sees; [] when there are none."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        gpus = []
        for entry in (e.strip() for e in listed.split(",")):
            if not entry or entry.startswith("-"):  # CUDA stops at the first invalid entry
                break
            gpus.append(entry)
        return gpus
    import torch  # here: the runner itself never needs it otherwise

    return [str(i) for i in range(torch.cuda.device_count())]


def gpu_slots(jobs: int, gpus: list[str]) -> list[str]:
    """The CUDA_VISIBLE_DEVICES value of each of ``jobs`` slots (a run holds one slot while it
    runs); [] without GPUs. jobs <= G: G // jobs GPUs a slot, none shared (the rest idle);
    jobs > G: one GPU a slot, round-robin, so each GPU runs at most ceil(jobs / G) runs at
    once. Shared rather than refused: a VRNN run rarely fills a GPU, and a CPU-only sweep on
    a one-GPU machine must still run with --jobs 2 (CUDA_VISIBLE_DEVICES= hides the GPUs)."""
    if not gpus:
        return []
    if jobs <= len(gpus):
        k = len(gpus) // jobs
        return [",".join(gpus[i * k : (i + 1) * k]) for i in range(jobs)]
    return [gpus[i % len(gpus)] for i in range(jobs)]


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP to the runner: handled as Ctrl-C (its runs stopped, marked preempted)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _stop(signum, frame):
    raise Stopped(signum)


# how a run stopped by SIGTERM (a preemption) or Ctrl-C ends: vrnn-fit exits 128 + signal after
# saving what resumes it; a process the signal killed outright has the negative signal number
INTERRUPTED = {128 + signal.SIGTERM, 128 + signal.SIGINT, 128 + signal.SIGUSR1}
INTERRUPTED |= {-signal.SIGTERM, -signal.SIGINT}


def run_state(exit_code: int) -> str:
    """The state of a run whose process ended with ``exit_code``: an interrupted run is
    preempted (a rerun resumes it), never finished."""
    if exit_code == 0:
        return "finished"
    return "preempted" if exit_code in INTERRUPTED else "failed"


STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def _alive(pid: int, command: list[str]) -> bool:
    """Whether process ``pid`` runs and (where /proc tells) runs ``command``: a pid reused
    by another program since does not count."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]
    except OSError:
        return True  # no /proc: the pid is all there is to go by
    args = [a.decode(errors="replace") for a in args]
    tail = command[1:]
    if not tail:
        return any(Path(a).name == Path(command[0]).name for a in args)
    return args[-len(tail) :] == tail


def load_sweep(path: str | Path) -> dict:
    """The sweep config in ``path``, validated by W&B's sweep schema."""
    path = Path(path)
    if not path.is_file():
        raise SweepError(f"{path}: no such sweep file")
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise SweepError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(config, dict):
        raise SweepError(f"{path}: a sweep config is a mapping (method, metric, parameters, ...)")
    try:
        violations = sweeps.schema_violations_from_proposed_config(config)
    except ValueError as err:  # raised (not listed) for a parameter that is not a mapping
        violations = [str(err)]
    # the schema's messages do not say where: add the key path of each
    where = {
        e.message: ".".join(map(str, e.absolute_path)) for e in schema_validator.iter_errors(config)
    }
    violations = [f"{where[m]}: {m}" if where.get(m) else m for m in violations]
    if violations:
        raise SweepError(f"{path}: not a valid W&B sweep config: " + "; ".join(violations))
    if "metric" not in config:
        raise SweepError(f"{path}: metric: missing (e.g. name: val/elbo, goal: maximize)")
    config.setdefault("name", path.stem)
    return config


@contextlib.contextmanager
def _environ(**values: str):
    """os.environ with ``values`` set for the duration (config interpolations read it)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def fit_config(command: list[str], run_id: str) -> dict:
    """The resolved config vrnn-fit trains when it runs ``command`` with WANDB_RUN_ID=run_id;
    SweepError naming the key when vrnn-fit would refuse it."""
    starts = [i for i, word in enumerate(command) if Path(word).name in FIT_PROGRAMS]
    if not starts:
        raise SweepError(f"command: {' '.join(command)} does not run vrnn-fit")
    fit_args = command[starts[0] + 1 :]
    try:
        config_path, overrides = parse_run_args(fit_args)
    except SystemExit:
        raise SweepError(f"command: vrnn-fit cannot parse {' '.join(fit_args)}") from None
    try:
        with _environ(WANDB_RUN_ID=run_id):
            cfg = OmegaConf.to_container(load_config(config_path, overrides), resolve=True)
    except (ConfigError, OmegaConfBaseException) as err:
        raise SweepError(f"run {run_id}: {' '.join(fit_args)}: {err}") from None
    wandb = cfg["logger"]["wandb"]
    if wandb["enabled"] and wandb["mode"] == "online":
        raise SweepError(
            "logger.wandb.mode: online needs a W&B server; a local sweep runs offline or disabled"
        )
    return cfg


@dataclass
class LocalRun:
    id: str
    config: dict  # the run's sweep parameters as in W&B's run config: {key: {"value": ...}}
    command: list[str]
    out_dir: str
    dataset: str
    variant: str
    seed: int
    state: str = "pending"  # sweeps.RunState names
    exitcode: int | None = None
    stopped: bool = False  # stopped by hyperband
    history: list[dict] = field(default_factory=list)
    pid: int | None = None  # the process while it runs, so that a rerun never starts it twice
    host: str | None = None

    def setting(self, varied: list[str]) -> str:
        """The run's values of the ``varied`` parameters apart from its seed and its name."""
        kept = {k: self.config[k]["value"] for k in varied if k not in NOT_A_SETTING}
        return json.dumps(kept, sort_keys=True)


class LocalSweep:
    """A sweep's runs, persisted in ``folder``/state.json."""

    def __init__(
        self,
        folder: Path,
        config: dict,
        runs: list[LocalRun],
        overrides: list[str] | None = None,
        iw_samples: int | None = None,
    ):
        self.folder, self.config, self.runs = folder, config, runs
        self.overrides = list(overrides or [])  # key=value added to every new run's command
        self.iw_samples = iw_samples  # the K the sweep evaluates with (None: each run's own)

    @classmethod
    def open(cls, folder: str | Path, config: dict | None = None) -> LocalSweep:
        """The sweep in ``folder``; a new one when there is none and ``config`` is given."""
        folder = Path(folder)
        path = folder / STATE_FILE
        if not path.is_file():
            if config is None:
                raise SweepError(f"{path}: no local sweep state here")
            return cls(folder, config, [])
        try:
            state = json.loads(path.read_text())
            version = state.get("version")
            saved, runs = state["config"], [LocalRun(**r) for r in state["runs"]]
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise SweepError(
                f"{path}: corrupt sweep state ({type(err).__name__}: {err}); restore it, or use "
                "another --out folder (the run folders and their checkpoints are untouched)"
            ) from None
        if version != STATE_VERSION:
            raise SweepError(f"{path}: state version {version}, not {STATE_VERSION}")
        if config is not None and saved != config:
            raise SweepError(
                f"{path}: this sweep was started from another sweep config; "
                "use another --out folder, or delete this one to start over"
            )
        return cls(folder, saved, runs, state.get("overrides"), state.get("iw_samples"))

    def save(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        state = {
            "version": STATE_VERSION,
            "config": self.config,
            "runs": [asdict(r) for r in self.runs],
            "overrides": self.overrides,
            "iw_samples": self.iw_samples,
        }
        tmp = self.folder / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(state, indent=1) + "\n")
        os.replace(tmp, self.folder / STATE_FILE)  # a killed runner never leaves half a file

    def sweep_runs(self) -> list[sweeps.SweepRun]:
        """The runs as W&B's sweep engine sees them."""
        metric = self.config["metric"]["name"]
        out = []
        for run in self.runs:
            summary = {metric: run.history[-1][metric]} if run.history else {}
            out.append(
                sweeps.SweepRun(
                    name=run.id,
                    config=run.config,
                    state=run.state,
                    history=run.history,
                    summary_metrics=summary,
                    stopped=run.stopped,
                    exitcode=run.exitcode,
                )
            )
        return out

    def results(self, iw_samples: int | None, console: Console) -> list[RunResult]:
        """The finished runs, each evaluated at its best checkpoint."""
        metric = self.config["metric"]["name"]
        varied = [k for k, spec in self.config["parameters"].items() if "value" not in spec]
        results = []
        for run in self.runs:
            if run.state != "finished":
                continue
            try:
                evaluated = evaluate_run(run.out_dir, iw_samples)
            except ReportError as err:
                _say(console, f"vrnn-sweep: {run.id} left out of the table: {err}")
                continue
            best = _best([h[metric] for h in metric_history(run.out_dir, metric)], self.config)
            results.append(
                RunResult(
                    run.id, run.variant, run.dataset, run.seed, run.setting(varied), best, evaluated
                )
            )
        return results


def _best(values: list[float], config: dict) -> float:
    """The best of a run's metric values by the sweep's goal; nan when it logged none."""
    if not values:
        return math.nan
    return max(values) if config["metric"]["goal"] == "maximize" else min(values)


def _say(console: Console, text: str) -> None:
    """A line of text as it is: no markup, no highlighting, not wrapped (commands, paths)."""
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def _plain(value):
    """JSON-safe Python values (the engine may propose numpy scalars), as W&B's server sends."""
    return json.loads(json.dumps(value, default=lambda x: x.item()))


class Runner:
    """Proposes, launches, watches and stops the runs of a local sweep."""

    def __init__(self, sweep: LocalSweep, cap: int | None, jobs: int, poll: float, console):
        self.sweep, self.cap, self.jobs, self.poll, self.console = sweep, cap, jobs, poll, console
        # validated, with W&B's defaults filled in (metric.impute, hyperband eta, ...)
        self.engine_config = sweeps.SweepConfig(sweep.config)
        self.procs: dict[str, subprocess.Popen] = {}
        self.stop_sent: dict[str, float] = {}
        self.kill_delay = 30.0  # as the agent: SIGTERM, then SIGKILL if still running
        self.launched = 0
        # each running run holds a slot: its own GPU(s) in CUDA_VISIBLE_DEVICES; a slot is
        # free again when its run ends (watch), so a new run never lands on a busy GPU
        self.slots = gpu_slots(jobs, visible_gpus())
        self.slot_of: dict[str, int] = {}  # run id -> its slot while it runs
        if len(self.slots) > len(set(self.slots)):
            shared = f"{jobs} jobs on {len(set(self.slots))} GPU(s): runs share a GPU"
            _say(console, f"vrnn-sweep: {shared}, round-robin")
        # runs an interrupted invocation left behind start again, as W&B resumes preempted runs
        self.resume = [r for r in sweep.runs if r.state in ACTIVE]
        for run in self.resume:  # unless its process still runs (a runner killed with -9)
            if run.pid and run.host == socket.gethostname() and _alive(run.pid, run.command):
                raise SweepError(
                    f"run {run.id}: its previous process {run.pid} still runs "
                    f"({shlex.join(run.command)}); stop it (kill {run.pid}) or let it end, "
                    "then run vrnn-sweep again"
                )

    def propose(self) -> LocalRun | None:
        if self.resume:
            return self.resume.pop(0)
        if self.cap is not None and len(self.sweep.runs) >= self.cap:
            return None
        proposal = sweeps.next_run(self.engine_config, self.sweep.sweep_runs())
        if proposal is None:  # a grid with every point run
            return None
        run_id = generate_id()
        args = _plain(proposal.config)
        command = agent_command(
            self.sweep.config, args, self.sweep.folder / "args" / f"{run_id}.json"
        )
        command += self.sweep.overrides  # the invocation's key=value, last: they win
        cfg = fit_config(command, run_id)  # refuses a bad run before anything starts
        run = LocalRun(
            run_id, args, command, cfg["out_dir"], cfg["data"]["dataset"],
            model_row(cfg["model"]["variant"], cfg["model"].get("output")), cfg["seed"],
        )  # fmt: skip
        self.sweep.runs.append(run)
        return run

    def launch(self, run: LocalRun) -> None:
        env = job_environment(dict(os.environ, WANDB_RUN_ID=run.id), self.jobs)
        # the venv's console scripts (vrnn-fit) and python, as if it were activated
        env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
        slot = None
        if self.slots:  # no GPU: CUDA_VISIBLE_DEVICES stays as the parent has it
            slot = min(set(range(len(self.slots))) - set(self.slot_of.values()))
            env["CUDA_VISIBLE_DEVICES"] = self.slots[slot]
        log = self.sweep.folder / "logs" / f"{run.id}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            try:
                self.procs[run.id] = subprocess.Popen(
                    run.command, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out
                )
            except FileNotFoundError:
                raise SweepError(f"command: {run.command[0]} is not on PATH") from None
        run.state, run.exitcode, run.stopped = "running", None, False
        run.pid, run.host = self.procs[run.id].pid, socket.gethostname()
        if slot is not None:
            self.slot_of[run.id] = slot
        self.launched += 1
        self.sweep.save()
        varied = [k for k, spec in self.sweep.config["parameters"].items() if "value" not in spec]
        params = " ".join(f"{k}={run.config[k]['value']}" for k in varied if k in run.config)
        gpu = f", CUDA_VISIBLE_DEVICES={self.slots[slot]}" if slot is not None else ""
        _say(self.console, f"vrnn-sweep: {run.id} started: {params} (log {log}{gpu})")

    def watch(self) -> None:
        """Read the running runs' metrics, collect the ended ones, stop what hyperband says."""
        metric = self.sweep.config["metric"]["name"]
        runs = {r.id: r for r in self.sweep.runs}
        for run_id, proc in list(self.procs.items()):
            run = runs[run_id]
            run.history = metric_history(run.out_dir, metric)
            code = proc.poll()
            if code is None:
                continue
            del self.procs[run_id]
            self.slot_of.pop(run_id, None)  # its GPU(s) free for the next run
            run.exitcode, run.pid = code, None
            run.state = "killed" if run.stopped else run_state(code)
            best = _best([h[metric] for h in run.history], self.sweep.config)
            _say(
                self.console,
                f"vrnn-sweep: {run_id} {run.state} (exit {code}), best {metric} {best:.2f}",
            )
        if "early_terminate" in self.sweep.config:
            for proposal in sweeps.stop_runs(self.engine_config, self.sweep.sweep_runs()):
                run = runs[proposal.name]
                if run.id in self.procs and not run.stopped:
                    run.stopped = True
                    self.stop_sent[run.id] = time.monotonic()
                    self.procs[run.id].terminate()
                    _say(self.console, f"vrnn-sweep: {run.id} stopped by hyperband")
        for run_id, sent in self.stop_sent.items():
            if run_id in self.procs and time.monotonic() > sent + self.kill_delay:
                self.procs[run_id].kill()
        self.sweep.save()

    def run(self) -> None:
        # SIGTERM / SIGHUP (a job scheduler, a closed terminal) stop the runs as Ctrl-C does:
        # left to their default, the runner died and its runs trained on under PID 1
        handlers = threading.current_thread() is threading.main_thread()
        previous = {s: signal.signal(s, _stop) for s in STOP_SIGNALS} if handlers else {}
        try:
            while True:
                while len(self.procs) < self.jobs and (run := self.propose()) is not None:
                    self.launch(run)
                if not self.procs:
                    break
                time.sleep(self.poll)
                self.watch()
        except BaseException:  # Ctrl-C or an error: leave no run behind, resumable later
            for s in previous:  # a second signal must not cut the clean-up short
                signal.signal(s, signal.SIG_IGN)
            for run_id, proc in self.procs.items():
                proc.terminate()
                try:
                    proc.wait(timeout=self.kill_delay)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                run = next(r for r in self.sweep.runs if r.id == run_id)
                run.state, run.pid = "preempted", None
            self.sweep.save()
            raise
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


def report(sweep: LocalSweep, iw_samples: int | None, console: Console) -> list[Path]:
    """The sweep's Table 1; K: ``iw_samples``, else the one the sweep ran with."""
    title = f"{sweep.config['name']}: log-likelihood per sequence (nats)"
    k = iw_samples or sweep.iw_samples
    return _write(sweep.folder, title, sweep.results(k, console), console)


def report_folders(
    folders: list[str], out: str | Path, iw_samples: int | None, console: Console
) -> list[Path]:
    """The report of run folders (e.g. an online sweep's runs/<sweep>-<run id>), each with
    a best checkpoint; a folder holding state.json is a local sweep's runs."""
    results = []
    for folder in map(Path, folders):
        if (folder / STATE_FILE).is_file():
            sweep = LocalSweep.open(folder)
            results += sweep.results(iw_samples or sweep.iw_samples, console)
        else:
            results.append(folder_result(folder, iw_samples))
    return _write(out, "log-likelihood per sequence (nats)", results, console)


def _write(folder, title: str, results: list[RunResult], console: Console) -> list[Path]:
    paths = write_report(folder, title, results)
    console.print(rich_table(title, results))
    console.print("written " + ", ".join(map(str, paths)))
    return paths


def run_local(
    sweep_file: str | Path,
    out: str | Path | None = None,
    count: int | None = None,
    jobs: int = 1,
    poll: float = 5.0,
    iw_samples: int | None = None,
    console: Console | None = None,
    overrides: list[str] | None = None,
) -> LocalSweep:
    """Run the sweep in ``sweep_file`` here until it is done, then write the report.
    ``overrides`` (key=value) are added to the command of every run started now."""
    console = console or Console()
    config = load_sweep(sweep_file)
    folder = Path(out) if out else Path("sweeps_local") / config["name"]
    sweep = LocalSweep.open(folder, config)
    sweep.overrides = list(overrides or [])
    if iw_samples is not None:
        sweep.iw_samples = iw_samples
    cap = count or config.get("run_cap")
    if config["method"] != "grid" and not cap:
        raise SweepError(
            f"{sweep_file}: method {config['method']} proposes runs without end: "
            "set run_cap in the file or pass --count N"
        )
    runner = Runner(sweep, cap, jobs, poll, console)
    runner.run()
    done = sum(r.state == "finished" for r in sweep.runs)
    console.print(
        f"vrnn-sweep: {sweep.config['name']}: {runner.launched} run(s) started now, "
        f"{done} of {len(sweep.runs)} finished; state in {folder / STATE_FILE}"
    )
    report(sweep, iw_samples, console)
    return sweep


def check(
    sweep_file: str | Path, console: Console, show: int = 5, overrides: list[str] | None = None
) -> None:
    """Validate the file and the runs it proposes (all of a grid, else ``show``): list them."""
    config = load_sweep(sweep_file)
    engine_config = sweeps.SweepConfig(config)
    limit = math.inf if config["method"] == "grid" else show
    runs: list[sweeps.SweepRun] = []
    with tempfile.TemporaryDirectory() as tmp:  # for ${args_json_file}
        while len(runs) < limit and (proposal := sweeps.next_run(engine_config, runs)):
            run_id = generate_id()
            args = _plain(proposal.config)
            command = agent_command(config, args, Path(tmp) / f"{run_id}.json")
            command += overrides or []
            fit_config(command, run_id)
            _say(console, f"{run_id}: {shlex.join(command)}")  # safe to paste into a shell
            runs.append(sweeps.SweepRun(name=run_id, config=args, state="pending"))
    console.print(
        f"{sweep_file}: valid, {len(runs)} run(s) shown; online: wandb sweep {sweep_file} && "
        f"wandb agent ENTITY/PROJECT/ID; here: vrnn-sweep {sweep_file} --local"
    )
