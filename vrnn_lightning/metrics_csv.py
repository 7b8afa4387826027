"""A run folder's logged metrics, read back from its CSV logs (csv/version_N/metrics.csv)."""

from __future__ import annotations

import csv
from pathlib import Path


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
