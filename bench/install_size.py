"""How much a virtual environment's packages take on disk, grouped: the CUDA wheels (nvidia-*),
triton, torch itself and the rest; what a CPU-only install saves (README, "Install").

    python bench/install_size.py [VENV ...]      # default: the running interpreter's prefix

Each file is counted once, for the distribution whose RECORD lists it (files no RECORD lists,
such as __pycache__ written later, count as the rest); sizes are apparent file sizes in GiB.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path

GROUPS = ("nvidia-*", "triton", "torch", "rest")


def group_of(distribution: str) -> str:
    name = distribution.lower().replace("_", "-")
    if name.startswith("nvidia-"):
        return "nvidia-*"
    return name if name in ("triton", "torch") else "rest"


def site_packages(venv: Path) -> Path:
    found = sorted(venv.glob("lib/python*/site-packages"))
    if not found:
        raise SystemExit(f"{venv}: no lib/python*/site-packages (not a virtual environment?)")
    return found[0]


def sizes(site: Path) -> dict[str, int]:
    """Bytes per group of the files under ``site``."""
    out = dict.fromkeys(GROUPS, 0)
    seen: set[Path] = set()
    for info in sorted(site.glob("*.dist-info")):
        record = info / "RECORD"
        if not record.is_file():
            continue
        group = group_of(info.name.split("-")[0])
        with record.open(newline="") as f:
            for row in csv.reader(f):
                if not row:
                    continue
                path = (site / row[0]).resolve()
                if path in seen or not path.is_file():
                    continue
                seen.add(path)
                out[group] += path.stat().st_size
    for folder, _dirs, names in os.walk(site):
        for n in names:
            path = (Path(folder) / n).resolve()
            if path not in seen and path.is_file():
                seen.add(path)
                out["rest"] += path.stat().st_size
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("venvs", nargs="*", default=[sys.prefix])
    args = parser.parse_args()
    gib = 2**30
    print(f"{'venv':<40} " + " ".join(f"{g:>9}" for g in GROUPS) + f" {'total':>9}   (GiB)")
    for venv in args.venvs:
        by_group = sizes(site_packages(Path(venv)))
        cells = " ".join(f"{by_group[g] / gib:9.2f}" for g in GROUPS)
        print(f"{venv:<40} {cells} {sum(by_group.values()) / gib:9.2f}")


if __name__ == "__main__":
    main()
