"""The Table 1 report of a set of finished runs: rows the variants, columns the datasets.

Each run's best val/elbo checkpoint is evaluated with vrnn-eval (cached beside the run as
``sweep_eval.json``). A cell is the mean and spread over seeds of the average log-likelihood per
sequence, in nats: for rnn_* the exact log-likelihood; for vrnn_* the lower bounds of
vrnn_lightning/estimators.py's registry (ELBO, IWAE(K), SMC(K)); every registered estimate,
the paper's own per-step estimate included, is in the CSV.
When a (variant, dataset) cell holds runs of several settings (a search sweep, or one that
compares settings such as the training objective), the setting with the best mean best val/elbo
is reported, as a paper selects on the validation set; the section "Every setting" (and
settings.csv) then lists every setting of every cell and compares each with the selected one,
paired over seeds, so that a sweep made to compare settings shows its comparison.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf
from rich.console import Group, RenderableType
from rich.table import Table

from .estimators import ESTIMATORS
from .metrics_csv import metric_history
from .paired import Paired, compare, interval, paper_pairs
from .paired import row as paired_row
from .variant import ALL_VARIANTS, VARIANTS, Variant

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


AR_ROW = " (autoregressive)"  # a row of a model with model.output=autoregressive


def model_row(variant: str, output: str | None = "independent") -> str:
    """The table's row of a run: its variant, and its output head when not the paper's."""
    return variant + (AR_ROW if output == "autoregressive" else "")


def row_variant(row: str) -> str:
    """The variant of a table row (``model_row``'s inverse, the head aside)."""
    return row.removesuffix(AR_ROW)


def model_rows(results: list[RunResult]) -> list[str]:
    """The table's rows: the paper's six always, then every other model and head with runs."""
    found = {r.variant for r in results}
    later = [
        model_row(v, head)
        for v in ALL_VARIANTS
        for head in ("independent", "autoregressive")
        if model_row(v, head) in found and model_row(v, head) not in VARIANTS
    ]
    return list(VARIANTS) + later


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
        model_row(cfg["model"]["variant"], cfg["model"].get("output")),
        cfg["data"]["dataset"],
        cfg["seed"],
        json.dumps(setting, sort_keys=True),
        max(values),
        evaluate_run(run_dir, iw_samples),
    )


def _groups(results: list[RunResult]) -> dict[tuple[str, str], dict[str, list[RunResult]]]:
    """(variant, dataset) -> group -> its runs, in the order of ``results``."""
    groups: dict[tuple[str, str], dict[str, list[RunResult]]] = {}
    for r in results:
        groups.setdefault((r.variant, r.dataset), {}).setdefault(r.group, []).append(r)
    return groups


def _best_val(runs: list[RunResult]) -> float:
    return statistics.fmean(r.best_val for r in runs)


def _selected(by_group: dict[str, list[RunResult]]) -> str:
    """The group with the best mean best val/elbo, the one the table reports."""
    return max(by_group, key=lambda g: _best_val(by_group[g]))


def cells(results: list[RunResult]) -> dict[tuple[str, str], Cell]:
    """(variant, dataset) -> the runs of the group with the best mean best val/elbo."""
    return {key: Cell(by_group[_selected(by_group)]) for key, by_group in _groups(results).items()}


def datasets(results: list[RunResult]) -> list[str]:
    found = {r.dataset for r in results}
    return [d for d in PAPER_DATASETS if d in found] + sorted(found - set(PAPER_DATASETS))


def _number(mean: float, std: float) -> str:
    return f"{mean:.1f}" if math.isnan(std) else f"{mean:.1f} ± {std:.1f}"


def cell_text(variant: str, cell: Cell | None) -> str:
    if cell is None:
        return "–"
    if not Variant.parse(row_variant(variant)).has_latent:  # the ELBO: the exact likelihood
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
    for variant in model_rows(results):
        row = [cell_text(variant, table.get((variant, d))) for d in columns]
        lines.append(f"| {variant} | " + " | ".join(row) + " |")
    lines += ["", CAPTION, ""] + [f"- {line}" for line in notes(table, columns)]
    lines += paired_section(table, columns) + settings_section(settings(results))
    return "\n".join(lines) + "\n"


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


@dataclass
class Setting:
    """One setting of a (variant, dataset) cell: the runs of its seeds, and how it compares
    with the cell's selected setting (None for the selected one itself)."""

    variant: str
    dataset: str
    values: dict  # the setting's value of each key that differs between the sweep's settings
    group: str
    cell: Cell
    selected: bool
    paired: Paired | None

    @property
    def name(self) -> str:
        return ", ".join(f"{k}={_value_text(v)}" for k, v in self.values.items()) or self.group

    @property
    def seeds(self) -> str:
        return ", ".join(str(r.seed) for r in sorted(self.cell.runs, key=lambda r: r.seed))

    @property
    def best_val(self) -> float:
        return _best_val(self.cell.runs)


UNSET = "(unset)"  # a key one setting of a cell has and another has not


def _value_text(value) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _flat(group: str) -> dict:
    """A group's setting as {dotted key: value}: a local sweep's group is flat already
    (its varied parameters), a run folder's is the nested config."""
    flat = {}

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict) and value:
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else k, v)
        else:
            flat[prefix] = value

    try:
        config = json.loads(group)
    except json.JSONDecodeError:
        config = None
    if not isinstance(config, dict):  # a group that is not a config: named as it is
        return {"setting": group}
    walk("", config)
    return flat


def compared_on(variant: str, k: int) -> tuple[str, str]:
    """(estimate, its label): the tightest bound the table shows for ``variant``: the exact
    log-likelihood for rnn_*, else the last (tightest) of the table's estimators, SMC(K)."""
    if not Variant.parse(row_variant(variant)).has_latent:
        return "elbo", "exact log-likelihood"
    return IN_TABLE[-1].name, IN_TABLE[-1].title.format(k=k)


def settings(results: list[RunResult]) -> list[Setting]:
    """Every setting of every cell, by dataset and variant as in the table, the selected
    (reported) setting first, the others by mean best val/elbo; [] when no cell holds more
    than one setting. A setting is named by the keys whose values differ between the settings
    of some cell (not the variant or dataset a cell is, nor what is the same in all)."""
    groups = _groups(results)
    if all(len(by_group) == 1 for by_group in groups.values()):
        return []
    flat = {g: _flat(g) for by_group in groups.values() for g in by_group}
    keys: set[str] = set()
    for by_group in groups.values():
        for key in set().union(*(flat[g] for g in by_group)):
            if len({_value_text(flat[g].get(key, UNSET)) for g in by_group}) > 1:
                keys.add(key)
    rows = []
    for dataset in datasets(results):
        for variant in model_rows(results):
            if (variant, dataset) not in groups:
                continue
            by_group = groups[(variant, dataset)]
            chosen = _selected(by_group)
            selected = Cell(by_group[chosen])
            others = sorted(
                (g for g in by_group if g != chosen),
                key=lambda g: (math.isnan(_best_val(by_group[g])), -_best_val(by_group[g])),
            )
            estimate, _ = compared_on(variant, selected.runs[0].eval["iw_samples"])
            for g in [chosen, *others]:
                cell = Cell(by_group[g])
                paired = None
                if g != chosen:
                    paired = compare(_scores(cell, estimate), _scores(selected, estimate))
                values = {k: flat[g].get(k, UNSET) for k in sorted(keys)}
                rows.append(Setting(variant, dataset, values, g, cell, g == chosen, paired))
    return rows


def _scores(cell: Cell, estimate: str) -> dict[int, float]:
    return dict(zip((r.seed for r in cell.runs), cell.values(estimate), strict=True))


VERDICTS = {
    None: "not enough seeds",
    0: "not resolved",
    1: "resolved, higher than the selected",
    -1: "resolved, lower than the selected",
}
SETTINGS_CAPTION = (
    "Each cell's settings, named by the keys that differ between the sweep's settings; the "
    "table reports the one with the best mean best val/elbo (selected). Log-likelihood per "
    "sequence in nats, mean ± std over seeds, as in the table; the numbers are in settings.csv."
)
SETTINGS_PAIRED_CAPTION = (
    "On the tightest bound the table shows, per sequence: SMC(K) for vrnn_*, the exact "
    "log-likelihood for rnn_*. The setting minus the selected one per seed: the mean over the "
    "seeds both ran, its 95% interval (Student's t), and whether the interval excludes 0."
)


def _setting_cells(s: Setting) -> list[str]:
    return [
        s.dataset,
        s.variant,
        s.name,
        s.seeds,
        f"{s.best_val:.1f}",
        cell_text(s.variant, s.cell),
        "selected" if s.selected else "",
    ]


def _paired_cells(s: Setting, selected: Setting) -> list[str]:
    p = s.paired
    _, on = compared_on(s.variant, s.cell.runs[0].eval["iw_samples"])
    return [
        s.dataset,
        s.variant,
        f"{s.name} - {selected.name}",
        on,
        str(p.n),
        f"{p.mean:.1f}" if p.n else "–",  # no seed in common with the selected setting
        interval(p),
        VERDICTS[p.direction],
    ]


def _with_selected(rows: list[Setting]) -> list[tuple[Setting, Setting]]:
    """(setting, the selected setting of its cell) for every setting not selected."""
    pairs, selected = [], None
    for s in rows:  # each cell's selected setting comes first
        if s.selected:
            selected = s
        else:
            pairs.append((s, selected))
    return pairs


SETTINGS_HEADER = ["dataset", "model", "setting", "seeds", "mean best val/elbo"]
SETTINGS_HEADER += ["log-likelihood per sequence", "in the table"]
SETTINGS_PAIRED_HEADER = ["dataset", "model", "setting - selected", "on", "seeds"]
SETTINGS_PAIRED_HEADER += ["mean difference", "95% interval", "verdict"]


def settings_section(rows: list[Setting]) -> list[str]:
    """The markdown of every setting and of each setting against its cell's selected one."""
    if not rows:
        return []

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cells) + " |"

    return [
        "",
        "## Every setting",
        "",
        SETTINGS_CAPTION,
        "",
        line(SETTINGS_HEADER),
        "| --- | --- | --- | --- | ---: | ---: | --- |",
        *(line(_setting_cells(s)) for s in rows),
        "",
        "### Each setting against the selected one, paired over seeds",
        "",
        SETTINGS_PAIRED_CAPTION,
        "",
        line(SETTINGS_PAIRED_HEADER),
        "| --- | --- | --- | --- | ---: | ---: | --- | --- |",
        *(line(_paired_cells(s, sel)) for s, sel in _with_selected(rows)),
    ]


def rich_settings(rows: list[Setting]) -> list[Table]:
    """The settings section as Rich tables (none when every cell holds one setting)."""
    if not rows:
        return []
    every = Table(title="Every setting", caption=SETTINGS_CAPTION)
    for i, name in enumerate(SETTINGS_HEADER):
        every.add_column(name, justify="right" if i in (4, 5) else "left")
    for s in rows:
        every.add_row(*_setting_cells(s))
    paired = Table(
        title="Each setting against the selected one, paired over seeds",
        caption=SETTINGS_PAIRED_CAPTION,
    )
    for i, name in enumerate(SETTINGS_PAIRED_HEADER):
        paired.add_column(name, justify="right" if i in (4, 5) else "left")
    for s, selected in _with_selected(rows):
        paired.add_row(*_paired_cells(s, selected))
    return [every, paired]


def rich_table(title: str, results: list[RunResult]) -> RenderableType:
    """The table for the console; followed by the settings section when a cell holds several."""
    table, columns = cells(results), datasets(results)
    t = Table(title=title, caption=CAPTION + "\n" + "\n".join(notes(table, columns)))
    t.add_column("model")
    for d in columns:
        t.add_column(d, justify="right")
    for variant in model_rows(results):
        t.add_row(variant, *[cell_text(variant, table.get((variant, d))) for d in columns])
    more = rich_settings(settings(results))
    return Group(t, *more) if more else t


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
            for variant in model_rows(results):
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


def write_settings_csv(path: Path, rows: list[Setting]) -> None:
    """One row per setting of the settings section: each differing key's value, every
    estimate's mean and std, and the paired comparison with the cell's selected setting."""
    keys = list(rows[0].values)
    header = ["variant", "dataset", *keys, "setting", "selected", "seeds", "n_runs"]
    header += ["best_val_elbo_mean", "split", "sequence", "iw_samples"]
    header += [f"{e}_{stat}" for e in ESTIMATES for stat in ("mean", "std")]
    header += ["paired_on", "paired_seeds", "difference_mean", "difference_low"]
    header += ["difference_high", "verdict", "runs", "group"]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for s in rows:
            first = s.cell.runs[0].eval
            row = [s.variant, s.dataset, *(_value_text(v) for v in s.values.values())]
            row += [s.name, s.selected, s.seeds.replace(", ", " "), len(s.cell.runs)]
            row += [_csv_number(s.best_val), first["split"], _sequence(first)]
            row.append(first["iw_samples"])
            for e in ESTIMATES:
                row += [_csv_number(s.cell.mean(e)), _csv_number(s.cell.std(e))]
            p = s.paired
            if p is None:  # the selected setting itself
                row += ["", "", "", "", "", ""]
            else:
                row += [compared_on(s.variant, first["iw_samples"])[0], p.n]
                row += [_csv_number(p.mean), _csv_number(p.mean - p.half_width)]
                row += [_csv_number(p.mean + p.half_width), VERDICTS[p.direction]]
            row += [" ".join(r.run for r in s.cell.runs), s.group]
            writer.writerow(row)


def write_report(folder: str | Path, title: str, results: list[RunResult]) -> list[Path]:
    """table1.md, table1.csv and runs.csv in ``folder``, and settings.csv when a cell holds
    several settings; returns their paths."""
    if not results:
        raise ReportError(f"{folder}: no finished run to report")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    md, table_csv, runs_csv = folder / "table1.md", folder / "table1.csv", folder / "runs.csv"
    md.write_text(markdown(title, results))
    write_csv(table_csv, results)
    write_runs_csv(runs_csv, results)
    rows, settings_csv = settings(results), folder / "settings.csv"
    if not rows:
        settings_csv.unlink(missing_ok=True)  # a stale one would describe other runs
        return [md, table_csv, runs_csv]
    write_settings_csv(settings_csv, rows)
    return [md, table_csv, runs_csv, settings_csv]
