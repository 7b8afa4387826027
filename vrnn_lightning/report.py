"""The Table 1 report of a set of finished runs: rows the variants, columns the datasets.

Each run's best val/elbo checkpoint is evaluated with vrnn-eval (cached beside the run as
``sweep_eval.json``). A cell is the mean and spread over seeds of the average log-likelihood per
sequence, in nats: for rnn_* the exact log-likelihood; for vrnn_* the lower bounds of
vrnn_lightning/estimators.py's registry (ELBO, IWAE(K), SMC(K)); every registered estimate,
the paper's own per-step estimate included, is in the CSV.
When a (variant, dataset) cell holds runs of several settings (a search sweep), the setting
with the best mean best val/elbo is reported, as a paper selects on the validation set.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf
from rich.table import Table

from .estimators import ESTIMATORS
from .paired import paper_pairs
from .paired import row as paired_row
from .variant import VARIANTS, Variant

ESTIMATES = tuple(ESTIMATORS)
IN_TABLE = [e for e in ESTIMATORS.values() if e.in_table]
EVAL_FILE = "sweep_eval.json"
# the paper's column order; other datasets follow alphabetically
PAPER_DATASETS = ("blizzard", "timit", "onomatopoeia", "accent", "iamondb")


class ReportError(RuntimeError):
    """A run that cannot be evaluated; the message names the run folder or file."""


@dataclass
class RunResult:
    run: str  # the run id
    variant: str
    dataset: str
    seed: int
    group: str  # the run's setting apart from its seed: runs of one group are seeds of it
    best_val: float  # the best val/elbo, which selects among groups
    eval: dict  # vrnn-eval's JSON


@dataclass
class Cell:
    runs: list[RunResult]

    def values(self, estimate: str) -> list[float]:
        values = [r.eval[estimate]["per_sequence"] for r in self.runs]
        return [math.nan if v is None else v for v in values]  # None: no finite sequence

    def mean(self, estimate: str) -> float:
        return statistics.fmean(self.values(estimate))

    def std(self, estimate: str) -> float:
        """The sample standard deviation over seeds; nan for a single run."""
        values = self.values(estimate)
        return statistics.stdev(values) if len(values) > 1 else math.nan


def evaluate_run(run_dir: str | Path, iw_samples: int | None = None) -> dict:
    """vrnn-eval's result for the run's best checkpoint with K = iw_samples (default: the run's
    eval.iw_samples); reused from the run folder when that checkpoint and K were evaluated."""
    # torch and Lightning: only when something is evaluated
    from .config import ConfigError
    from .data.source import CorpusError
    from .evaluation import evaluate_checkpoint

    run_dir = Path(run_dir)
    best = sorted(run_dir.glob("checkpoints/best-*.ckpt"), key=lambda p: p.stat().st_mtime)
    if not best:
        raise ReportError(f"{run_dir}: no checkpoints/best-*.ckpt (did the run validate?)")
    ckpt = best[-1]
    if iw_samples is None:
        iw_samples = OmegaConf.load(run_dir / "config.yaml").eval.iw_samples
    out = run_dir / EVAL_FILE
    if out.is_file() and out.stat().st_mtime >= ckpt.stat().st_mtime:
        cached = json.loads(out.read_text())
        if cached.get("checkpoint") == str(ckpt) and cached.get("iw_samples") == iw_samples:
            return cached
    try:
        result, _ = evaluate_checkpoint(ckpt, [f"eval.iw_samples={iw_samples}"], out)
    except (ConfigError, CorpusError) as err:
        raise ReportError(f"{run_dir}: cannot evaluate {ckpt}: {err}") from err
    return result


def folder_result(run_dir: str | Path, iw_samples: int | None = None) -> RunResult:
    """A run folder of vrnn-fit (e.g. of an online sweep, runs/<sweep>-<run id>) evaluated;
    its setting is its config apart from the seed and what names or places it."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise ReportError(f"{run_dir}: no config.yaml: not a vrnn-fit run folder")
    cfg = OmegaConf.to_container(OmegaConf.load(run_dir / "config.yaml"))
    values = [h["val/elbo"] for h in metric_history(run_dir, "val/elbo")]
    if not values:
        raise ReportError(f"{run_dir}: no val/elbo in csv/version_*/metrics.csv")
    setting = {k: v for k, v in cfg.items() if k not in ("seed", "name", "out_dir", "ckpt_path")}
    return RunResult(
        run_dir.name,
        cfg["model"]["variant"],
        cfg["data"]["dataset"],
        cfg["seed"],
        json.dumps(setting, sort_keys=True),
        max(values),
        evaluate_run(run_dir, iw_samples),
    )


def metric_history(out_dir: str | Path, metric: str) -> list[dict]:
    """The logged values of ``metric`` in a run folder's csv/version_N/metrics.csv, in step
    order; a resumed run's later version replaces the steps it logged again."""
    by_step: dict[int, float] = {}
    versions = Path(out_dir).glob("csv/version_*/metrics.csv")
    for path in sorted(versions, key=lambda p: int(p.parent.name.split("_")[1])):
        with open(path, newline="") as f:
            for i, row in enumerate(csv.DictReader(f)):
                try:  # a row being written by the run may be cut short
                    by_step[int(row.get("step") or i)] = float(row[metric])
                except (KeyError, TypeError, ValueError):
                    continue
    return [{metric: value, "_step": step} for step, value in sorted(by_step.items())]


def cells(results: list[RunResult]) -> dict[tuple[str, str], Cell]:
    """(variant, dataset) -> the runs of the group with the best mean best val/elbo."""
    groups: dict[tuple[str, str], dict[str, list[RunResult]]] = {}
    for r in results:
        groups.setdefault((r.variant, r.dataset), {}).setdefault(r.group, []).append(r)
    return {
        key: Cell(
            max(by_group.values(), key=lambda runs: statistics.fmean(r.best_val for r in runs))
        )
        for key, by_group in groups.items()
    }


def datasets(results: list[RunResult]) -> list[str]:
    found = {r.dataset for r in results}
    return [d for d in PAPER_DATASETS if d in found] + sorted(found - set(PAPER_DATASETS))


def _number(mean: float, std: float) -> str:
    return f"{mean:.1f}" if math.isnan(std) else f"{mean:.1f} ± {std:.1f}"


def cell_text(variant: str, cell: Cell | None) -> str:
    if cell is None:
        return "–"
    if not Variant.parse(variant).has_latent:  # the ELBO is the exact log-likelihood
        return _number(cell.mean("elbo"), cell.std("elbo"))
    # every number with its estimator's name: an IWAE or SMC bound in the place of Table 1's
    # second number must not read as the paper's "≈" (its per-step estimator, in the CSV)
    k = cell.runs[0].eval["iw_samples"]
    return " / ".join(
        f"{e.label(k)} {_number(cell.mean(e.name), cell.std(e.name))}" for e in IN_TABLE
    )


def _sequence(result: dict) -> str:
    return (
        "whole sequence" if result["eval_full_sequences"] else f"{result['seq_len']}-frame window"
    )


def notes(table: dict[tuple[str, str], Cell], columns: list[str]) -> list[str]:
    """One line per dataset: the split, what a sequence is, K and the runs per cell."""
    lines = []
    for dataset in columns:
        here = [c for (v, d), c in table.items() if d == dataset]
        first = here[0].runs[0].eval
        runs = sorted({len(c.runs) for c in here})
        lines.append(
            f"{dataset}: {first['split']} split, per {_sequence(first)}, "
            f"K={first['iw_samples']}, {'/'.join(map(str, runs))} seed(s) per cell"
        )
    return lines


CAPTION = (
    "Average log-likelihood per sequence in nats (higher is better), mean ± std over seeds of "
    "each run's best val/elbo checkpoint. rnn_*: the exact log-likelihood. vrnn_*: "
    + " / ".join(e.label("K") for e in IN_TABLE)
    + " (SMC's a bound in expectation; the paper's '≈' used its per-step estimator, not a "
    "bound: paper_estimate in table1.csv)."
)


def markdown(title: str, results: list[RunResult]) -> str:
    table, columns = cells(results), datasets(results)
    lines = [
        f"# {title}",
        "",
        "| model | " + " | ".join(columns) + " |",
        "| --- |" + " ---: |" * len(columns),
    ]
    for variant in VARIANTS:
        row = [cell_text(variant, table.get((variant, d))) for d in columns]
        lines.append(f"| {variant} | " + " | ".join(row) + " |")
    lines += ["", CAPTION, ""] + [f"- {line}" for line in notes(table, columns)]
    return "\n".join(lines + paired_section(table, columns)) + "\n"


def paired_section(table: dict[tuple[str, str], Cell], columns: list[str]) -> list[str]:
    """The paper's orderings tested over seeds (vrnn_lightning/paired.py), per dataset."""
    rows = []
    for dataset in columns:
        scores = {
            v: {r.seed: r.eval["elbo"]["per_sequence"] for r in cell.runs}
            for (v, d), cell in table.items()
            if d == dataset
        }
        rows += ["| " + " | ".join([dataset, *paired_row(p)]) + " |" for p in paper_pairs(scores)]
    if not rows:
        return []
    return [
        "",
        "## The paper's orderings, paired over seeds",
        "",
        "ELBO per sequence (rnn_*: the exact log-likelihood), higher minus lower per seed: the "
        "mean over the seeds both ran, its 95% interval (Student's t), and whether the interval "
        "excludes 0.",
        "",
        "| dataset | pair | seeds | mean difference | 95% interval | verdict |",
        "| --- | --- | ---: | ---: | --- | --- |",
        *rows,
    ]


def rich_table(title: str, results: list[RunResult]) -> Table:
    table, columns = cells(results), datasets(results)
    t = Table(title=title, caption=CAPTION + "\n" + "\n".join(notes(table, columns)))
    t.add_column("model")
    for d in columns:
        t.add_column(d, justify="right")
    for variant in VARIANTS:
        t.add_row(variant, *[cell_text(variant, table.get((variant, d))) for d in columns])
    return t


def _csv_number(x: float) -> str:
    return "" if math.isnan(x) else repr(x)


def write_csv(path: Path, results: list[RunResult]) -> None:
    """One row per filled cell, with every estimate's mean and std."""
    table = cells(results)
    header = ["variant", "dataset", "split", "sequence", "iw_samples", "n_runs"]
    header += [f"{e}_{stat}" for e in ESTIMATES for stat in ("mean", "std")] + ["runs"]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for dataset in datasets(results):
            for variant in VARIANTS:
                cell = table.get((variant, dataset))
                if cell is None:
                    continue
                first = cell.runs[0].eval
                row = [variant, dataset, first["split"], _sequence(first), first["iw_samples"]]
                row.append(len(cell.runs))
                for e in ESTIMATES:
                    row += [_csv_number(cell.mean(e)), _csv_number(cell.std(e))]
                row.append(" ".join(r.run for r in cell.runs))
                writer.writerow(row)


def write_runs_csv(path: Path, results: list[RunResult]) -> None:
    """Every evaluated run, whether or not its group was selected for the table."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["run", "variant", "dataset", "seed", "group", "best_val_elbo", *ESTIMATES])
        for r in results:
            estimates = [r.eval[e]["per_sequence"] for e in ESTIMATES]
            writer.writerow([r.run, r.variant, r.dataset, r.seed, r.group, r.best_val, *estimates])


def write_report(folder: str | Path, title: str, results: list[RunResult]) -> list[Path]:
    """table1.md, table1.csv and runs.csv in ``folder``; returns their paths."""
    if not results:
        raise ReportError(f"{folder}: no finished run to report")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    md, table_csv, runs_csv = folder / "table1.md", folder / "table1.csv", folder / "runs.csv"
    md.write_text(markdown(title, results))
    write_csv(table_csv, results)
    write_runs_csv(runs_csv, results)
    return [md, table_csv, runs_csv]
