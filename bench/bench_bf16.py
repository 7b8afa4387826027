"""bf16-mixed against fp32: the same training run on FSDD, compared after the same steps.

Trains conf/fsdd.yaml (the Free Spoken Digit corpus in ../shared/data) twice with the same
seed and number of steps, once with trainer.precision=32-true and once with bf16-mixed,
through vrnn-fit itself, and prints each run's wall time and final validation ELBO (whole
validation recordings, nats per sequence and per frame) and their relative difference
(target: within 1%).

    python bench/bench_bf16.py [--steps 300] [--variant vrnn_gmm]
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def last_validation(run: Path) -> dict:
    rows = []
    for path in sorted(run.glob("csv/version_*/metrics.csv")):
        with path.open() as f:
            rows += [r for r in csv.DictReader(f) if r.get("val/elbo")]
    if not rows:
        raise SystemExit(f"{run}: no validation was logged")
    return rows[-1]


def train(out: Path, precision: str, steps: int, variant: str, cache: Path, root: str) -> float:
    args = [
        sys.executable, "-m", "vrnn_lightning.fit", "--config", "conf/fsdd.yaml",
        f"out_dir={out}", f"model.variant={variant}", f"trainer.precision={precision}",
        f"trainer.max_steps={steps}", "trainer.max_epochs=-1", "trainer.enable_progress_bar=false",
        "trainer.early_stopping_patience=null", f"data.cache_dir={cache}", f"data.root={root}",
        "logger.wandb.mode=disabled", "sample.every_n_validations=0", "seed=7",
    ]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(args, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--variant", default="vrnn_gmm")
    parser.add_argument("--cache", default=str(REPO / "data_cache"))
    parser.add_argument(
        "--data-root",
        default=str(REPO.parent / "shared/data/fsdd/recordings"),
        help="FSDD's recordings (default: the copy beside the repository)",
    )
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for precision in ("32-true", "bf16-mixed"):
            out = Path(tmp) / precision
            wall = train(out, precision, args.steps, args.variant, Path(args.cache), args.data_root)
            results[precision] = (wall, last_validation(out))
    print(f"conf/fsdd.yaml, {args.variant}, {args.steps} training steps, seed 7, same data order")
    print(f"{'precision':12} {'wall s':>8} {'val/elbo':>12} {'per frame':>10}")
    for precision, (wall, row) in results.items():
        print(
            f"{precision:12} {wall:8.1f} {float(row['val/elbo']):12.2f} "
            f"{float(row['val/elbo_per_frame']):10.3f}"
        )
    ref, bf16 = (float(results[p][1]["val/elbo"]) for p in ("32-true", "bf16-mixed"))
    diff = 100 * abs(bf16 - ref) / abs(ref)
    print(f"relative difference of val/elbo: {diff:.2f}% (target <= 1%)")
    print(f"wall-time ratio fp32 / bf16: {results['32-true'][0] / results['bf16-mixed'][0]:.2f}x")


if __name__ == "__main__":
    main()
