"""Equal-budget ablation on FSDD: which of conf/fsdd.yaml's paper choices cost quality when
the budget is small (issue 13, part 2).

Each setting moves conf/fsdd.yaml one choice toward a plain VRNN (PyTorch's default
initialisation, no max-norm, the gradient of the per-frame mean loss clipped at 5, whole
recordings) or sets another learning rate (3e-4, 3e-3, 1e-2 for the conf's 1e-3), and
"plain" makes the four plain-VRNN moves at once (at the plain recipe's lr 1e-3). Every
(setting, variant, seed) is trained by ``vrnn-fit`` with the same sizes (h 256, z 32,
two-layer MLPs of 192, 10 components), batch 32, the same number of steps and the issue's
split fractions (``data.speaker_pattern=null data.test_fraction=0.1``: a random 10% of the
files is the test split, so every speaker is seen in training, unlike the unseen speaker of
the issue's reference), and its last checkpoint (after exactly --steps) is scored on the
test split. Printed, per setting and variant: the test ELBO per frame, mean ± std over the
seeds, and its paired difference to "fsdd" (the conf's own choices) with the 95% interval
over seeds (vrnn_lightning/paired.py) and whether it is resolved.

    python bench/bench_ablation.py                     # 9 settings x 3 variants x 3 seeds
    python bench/bench_ablation.py --steps 20 --val-every 10 --seeds 1 \\
        --variants vrnn_gauss --settings fsdd plain    # a smoke test of the whole path
    python bench/bench_ablation.py --report            # the tables of the runs done so far

A second table says whether max-norm binds: each cell's largest incoming-weight norm at its
last step over the cap 1.9365 (1.00: at the cap), and the share of rows at or over it.

Run from anywhere; the runs go to --out (default bench/out/ablation, git-ignored) and a rerun
reuses every run whose settings are unchanged.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere
from bench.bench_fsdd_variants import BIN, run, step_budget, validations  # noqa: E402
from vrnn_lightning.checkpoint import load_trained  # noqa: E402
from vrnn_lightning.config import load_config  # noqa: E402
from vrnn_lightning.data import FramesDataModule  # noqa: E402
from vrnn_lightning.data.datamodule import WindowSampler  # noqa: E402
from vrnn_lightning.networks import PAPER_MAX_NORM, max_norm_usage  # noqa: E402
from vrnn_lightning.paired import compare  # noqa: E402

SIZES = dict(h_dim=256, z_dim=32, phi_x_dim=192, phi_z_dim=192, enc_dim=192, prior_dim=192,
             dec_dim=192, mlp_layers=2, n_components=10)  # fmt: skip
SPLIT = ["data.speaker_pattern=null", "data.test_fraction=0.1"]
VARIANTS = ("vrnn_gmm", "rnn_gmm", "vrnn_gauss")


def settings(plain_clip: float) -> dict[str, list[str]]:
    """Setting -> its vrnn-fit overrides of conf/fsdd.yaml. ``plain_clip``: the threshold on
    this project's loss (a per-sequence sum averaged over sequences) equal to clipping the
    gradient of the per-frame mean at 5: 5 x the mean frames per training sequence."""
    moves = {
        "torch_init": ["model.init=torch"],
        "no_max_norm": ["optim.max_norm=null"],
        "plain_clip": ["optim.grad_clip_scale=none", f"optim.grad_clip={plain_clip:g}"],
        "whole_recordings": ["data.train_full_sequences=true"],
    }
    return {
        "fsdd": [],
        **moves,
        "lr_3e-4": ["optim.lr=0.0003"],
        "lr_3e-3": ["optim.lr=0.003"],
        "lr_1e-2": ["optim.lr=0.01"],
        "plain": [o for overrides in moves.values() for o in overrides],
    }


def training_split(data_root: str) -> tuple[float, int]:
    """(plain clip threshold, batches per epoch) of the ablation's training split: the threshold
    is 5 x the mean frames per training sequence (whole recordings); an epoch of 40-frame
    windows in batches of 32 bounds --val-every (vrnn-fit validates at epoch ends)."""
    cfg = load_config(ROOT / "conf/fsdd.yaml", [*SPLIT, f"data.root={data_root}"])
    cfg.data.cache_dir = str(ROOT / cfg.data.cache_dir)  # as vrnn-fit's, run from ROOT
    dm = FramesDataModule(cfg.data, seed=0)
    dm.prepare_data()
    dm.setup("fit")
    lengths = dm.store("train").lengths
    windows = len(WindowSampler(lengths, cfg.data.seq_len, shuffle=False))  # vrnn-fit's epoch
    return 5.0 * float(lengths.mean()), math.ceil(windows / 32)


def fit_overrides(args, setting: list[str], variant: str, seed: int, run_dir: Path) -> list[str]:
    return [
        f"model.variant={variant}",
        *[f"model.{k}={v}" for k, v in SIZES.items()],
        *SPLIT,
        "data.batch_size=32",
        f"data.root={args.data_root}",
        *setting,
        f"name=ablation_{variant}",
        f"out_dir={run_dir}",
        f"seed={seed}",
        # a validation, and so last.ckpt, at the last step
        *step_budget(args.steps, args.val_every),
    ]


def run_dir_of(args, name: str, variant: str, seed: int) -> Path:
    return Path(args.out).resolve() / name / variant / f"seed{seed}"


def cached_score(args, name: str, setting: list[str], variant: str, seed: int) -> float | None:
    """The test ELBO per frame of a finished run with exactly these settings, else None."""
    run_dir = run_dir_of(args, name, variant, seed)
    done = run_dir / "ablation_result.json"
    if not done.is_file():
        return None
    result = json.loads(done.read_text())
    if result["fit"] != fit_overrides(args, setting, variant, seed, run_dir):
        return None
    return result["elbo_per_frame"]


def train_and_score(args, name: str, setting: list[str], variant: str, seed: int) -> float:
    """The test ELBO per frame of one run's last checkpoint (trained unless cached)."""
    cached = cached_score(args, name, setting, variant, seed)
    if cached is not None:
        return cached
    run_dir = run_dir_of(args, name, variant, seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    fit_args = fit_overrides(args, setting, variant, seed, run_dir)
    for old in ("checkpoints", "csv"):  # never resume or read an older run
        shutil.rmtree(run_dir / old, ignore_errors=True)
    print(f"{name} {variant} seed {seed}: training ...", flush=True)
    run([str(BIN / "vrnn-fit"), "--config", "conf/fsdd.yaml", *fit_args], run_dir / "fit.log", 1)
    if max(validations(run_dir), default=0) != args.steps:
        sys.exit(f"{run_dir}: no validation at step {args.steps}; see fit.log")
    eval_json = run_dir / "eval_test.json"
    last = run_dir / "checkpoints" / "last.ckpt"
    # K = 1: only the ELBO is read
    eval_cmd = [str(BIN / "vrnn-eval"), "--ckpt", str(last), "--out", str(eval_json)]
    run([*eval_cmd, "eval.iw_samples=1"], run_dir / "eval.log", 1)
    elbo = json.loads(eval_json.read_text())["elbo"]["per_frame"]
    done = run_dir / "ablation_result.json"
    done.write_text(json.dumps({"fit": fit_args, "elbo_per_frame": elbo}, indent=2) + "\n")
    return elbo


def max_norm_cell(args, name: str, variant: str, seeds) -> str:
    """The last checkpoints' largest row norm / the cap (the largest over seeds) and the share
    of rows at or over the cap (the mean over seeds)."""
    usage = [
        max_norm_usage(
            load_trained(run_dir_of(args, name, variant, s) / "checkpoints/last.ckpt").model
        )
        for s in seeds
    ]
    largest, at_cap = max(u[0] for u in usage), statistics.fmean(u[1] for u in usage)
    return f"{largest:.2f} / {100 * at_cap:.2f}%"


def score_cell(scores: dict, name: str, variant: str, seeds: int) -> str:
    """mean ± std [n=k if short] (paired difference to fsdd [95% interval], * if resolved)."""
    by_seed = scores[name, variant]
    if not by_seed:
        return "-"
    values = list(by_seed.values())
    text = f"{statistics.fmean(values):.2f}"
    text += f" ± {statistics.stdev(values):.2f}" if len(values) > 1 else ""
    text += f" [n={len(values)}]" if len(values) < seeds else ""
    if name != "fsdd" and scores.get(("fsdd", variant)):
        p = compare(by_seed, scores["fsdd", variant])
        if p.n >= 2:
            low, high = p.mean - p.half_width, p.mean + p.half_width
            text += f" ({p.mean:+.2f} [{low:+.2f}, {high:+.2f}]{'*' if p.direction else ''})"
        elif p.n == 1:
            text += f" ({p.mean:+.2f})"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1500, help="optimiser steps per run")
    parser.add_argument("--val-every", type=int, default=50, help="must divide --steps")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 1..N per cell")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--settings", nargs="+", help="default: all (fsdd first)")
    parser.add_argument("--out", default=str(ROOT / "bench/out/ablation"))
    parser.add_argument("--data-root", default=str(ROOT.parent / "shared/data/fsdd/recordings"))
    parser.add_argument(
        "--report", action="store_true", help="train nothing: the tables of the finished runs"
    )
    args = parser.parse_args()
    args.data_root = str(Path(args.data_root).resolve())
    if args.steps % args.val_every:
        parser.error(f"--steps {args.steps} is not a multiple of --val-every {args.val_every}")
    clip, epoch_batches = training_split(args.data_root)
    if args.val_every > epoch_batches:  # found out before any training, not after the first run
        parser.error(
            f"--val-every {args.val_every}: an epoch of this split has {epoch_batches} batches; "
            "validation (and so last.ckpt) comes at epoch ends: choose at most that"
        )
    table = settings(clip)
    names = args.settings or list(table)
    unknown = set(names) - set(table)
    if unknown:
        parser.error(f"--settings: unknown {', '.join(sorted(unknown))}; known {', '.join(table)}")

    start = time.perf_counter()
    seeds = range(1, args.seeds + 1)
    score = cached_score if args.report else train_and_score
    scores = {  # (setting, variant) -> {seed: ELBO per frame}, the seeds that have a score
        (n, v): {s: x for s in seeds if (x := score(args, n, table[n], v, s)) is not None}
        for n in names
        for v in args.variants
    }
    print()
    print(
        f"FSDD equal-budget ablation: test ELBO per frame (nats, higher is better) after "
        f"{args.steps} steps, batch 32, seeds 1..{args.seeds}; sizes "
        + " ".join(f"{k}={v}" for k, v in SIZES.items())
    )
    print(f"  split: {' '.join(SPLIT)}; plain clip threshold {clip:.1f} (5 x mean frames)")
    print(
        "  each cell: mean ± std over seeds [how many, if fewer]; vs fsdd: paired difference "
        "[95% interval], * where the interval excludes 0"
    )
    print()
    print(f"{'setting':<17}" + "".join(f"{v:>48}" for v in args.variants))
    for n in names:
        print(
            f"{n:<17}"
            + "".join(f"{score_cell(scores, n, v, args.seeds):>48}" for v in args.variants)
        )
    print()
    print(
        f"max-norm: the largest incoming-weight norm / {PAPER_MAX_NORM} at the last step / "
        "rows at or over it (the largest over seeds / the mean share)"
    )
    print(f"{'setting':<17}" + "".join(f"{v:>20}" for v in args.variants))
    for n in names:
        cells = [
            max_norm_cell(args, n, v, scores[n, v]) if scores[n, v] else "-" for v in args.variants
        ]
        print(f"{n:<17}" + "".join(f"{c:>20}" for c in cells))
    print(f"\nwall time {(time.perf_counter() - start) / 60:.1f} min (cached runs count 0)")
    print("settings: " + "; ".join(f"{n}: {' '.join(table[n]) or '(conf)'}" for n in names))


if __name__ == "__main__":
    main()
