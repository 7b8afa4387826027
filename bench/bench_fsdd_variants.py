"""Model quality on FSDD: the six variants trained for the same fixed budget, in Table 1's layout.

Each variant is trained by the real application (``vrnn-fit --config conf/fsdd.yaml``) with
the same seed, the same model widths and the same number of optimiser steps, W&B disabled,
validated (speaker george) every ``--val-every`` steps; the checkpoint with the best val/elbo
within that budget (the paper's early stopping) is then scored by ``vrnn-eval`` on the test
split (speaker theo, whole recordings, as conf/fsdd.yaml sets). Printed: the paper's
Table 1 layout (rows RNN-Gauss, RNN-GMM, VRNN-I-Gauss, VRNN-Gauss, VRNN-GMM, VRNN-I-GMM; rnn_*
the exact log-likelihood, vrnn_* "ELBO >= / IWAE(K) >= / SMC(K) >=", every number named so that
no bound reads as the paper's "≈"), in nats per sequence and per frame, with the paper's
per-step estimate (its "≈") beside it. The paper's expectation: RNN-Gauss far below
RNN-GMM, the VRNNs above RNN-GMM.

    python bench/bench_fsdd_variants.py                       # 6 variants x 960 steps
    python bench/bench_fsdd_variants.py --steps 320 --size conf --variants rnn_gmm vrnn_gmm

Run from anywhere; the runs go to --out (default bench/out/fsdd_variants, git-ignored) and a
rerun reuses a variant's finished run and evaluation when its settings are unchanged.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere
from vrnn_lightning.metrics_csv import metric_history  # noqa: E402
from vrnn_lightning.model import VRNN  # noqa: E402
from vrnn_lightning.report import Cell, RunResult, cell_text  # noqa: E402

BIN = Path(sys.executable).parent  # vrnn-fit and vrnn-eval of this environment
# Table 1's row order (the paper has no VRNN-I-GMM row; it comes last)
ROWS = ("rnn_gauss", "rnn_gmm", "vrnn_i_gauss", "vrnn_gauss", "vrnn_gmm", "vrnn_i_gmm")
NAMES = {
    "rnn_gauss": "RNN-Gauss",
    "rnn_gmm": "RNN-GMM",
    "vrnn_i_gauss": "VRNN-I-Gauss",
    "vrnn_gauss": "VRNN-Gauss",
    "vrnn_gmm": "VRNN-GMM",
    "vrnn_i_gmm": "VRNN-I-GMM",
}
SIZES = {
    # conf/fsdd.yaml's own widths
    "conf": dict(h_dim=512, z_dim=64, phi_x_dim=256, phi_z_dim=128, enc_dim=128,
                 prior_dim=128, dec_dim=256, mlp_layers=2, n_components=10),
    # half of them: what a shared 2-core CPU trains in minutes
    "small": dict(h_dim=256, z_dim=32, phi_x_dim=128, phi_z_dim=64, enc_dim=64,
                  prior_dim=64, dec_dim=128, mlp_layers=2, n_components=10),
}  # fmt: skip


def step_budget(steps: int, val_every: int) -> list[str]:
    """The vrnn-fit overrides of a run of exactly ``steps`` optimiser steps, validated every
    ``val_every`` steps, that writes nothing but its metrics and checkpoints (here and in
    bench_ablation.py)."""
    return [
        f"trainer.max_steps={steps}",
        "trainer.max_epochs=-1",  # the step budget alone ends training
        # "epochs" of val_every batches, so that a validation falls on the last step
        f"trainer.limit_train_batches={val_every}",
        "trainer.early_stopping_patience=null",
        "trainer.enable_progress_bar=false",
        "logger.wandb.mode=disabled",
        "logger.log_every_n_steps=10",
        "sample.every_n_validations=0",
    ]


def overrides(args: argparse.Namespace, variant: str, run_dir: Path) -> list[str]:
    """The vrnn-fit overrides of one run: everything but the variant is shared."""
    model = [f"model.{k}={v}" for k, v in SIZES[args.size].items()]
    return [
        f"model.variant={variant}",
        *model,
        f"name=fsdd_{variant}",
        f"out_dir={run_dir}",
        f"seed={args.seed}",
        f"data.root={args.data_root}",  # the copy BENCHMARKS.md's figures came from
        *step_budget(args.steps, args.val_every),
    ]


def run(cmd: list[str], log: Path, threads: int) -> float:
    """Run cmd (cwd: the repository, for the conf's relative paths) with its output in log;
    returns the wall time. Stops the benchmark with the log's tail if it fails."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    with open(log, "w") as f:
        code = subprocess.call(cmd, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT)
    if code != 0:
        sys.exit(f"failed (exit {code}): {' '.join(cmd)}\n{log.read_text()[-3000:]}")
    return time.perf_counter() - start


def validations(run_dir: Path) -> dict[int, float]:
    """step -> val/elbo of every validation the run logged (steps counted from 1)."""
    return {h["_step"] + 1: h["val/elbo"] for h in metric_history(run_dir, "val/elbo")}


def train_and_eval(args: argparse.Namespace, variant: str) -> dict:
    """Train (unless an identical finished run exists) and evaluate one variant."""
    run_dir = Path(args.out).resolve() / variant
    run_dir.mkdir(parents=True, exist_ok=True)
    fit_args = overrides(args, variant, run_dir)
    settings = {"fit": fit_args, "iw_samples": args.iw_samples}
    done = run_dir / "bench_result.json"
    if done.is_file():
        cached = json.loads(done.read_text())
        if cached["settings"] == settings:
            print(f"{variant}: reusing {done}", flush=True)
            return cached
    for old in ("checkpoints", "csv"):  # never resume or read an older run
        shutil.rmtree(run_dir / old, ignore_errors=True)

    fit_cmd = [str(BIN / "vrnn-fit"), "--config", "conf/fsdd.yaml", *fit_args]
    print(f"{variant}: training ...", flush=True)
    fit_s = run(fit_cmd, run_dir / "fit.log", args.threads)
    if f"`max_steps={args.steps}` reached" not in (run_dir / "fit.log").read_text():
        sys.exit(f"{variant}: training stopped before {args.steps} steps; see {run_dir}/fit.log")
    val = validations(run_dir)
    if sorted(val) != list(range(args.val_every, args.steps + 1, args.val_every)):
        # limit_train_batches cannot make an epoch longer than the training set
        sys.exit(f"{variant}: validated at steps {sorted(val)}; is --val-every above the epoch?")
    # the best val/elbo checkpoint of the budget is scored (the paper's early stopping), not
    # last.ckpt (the model after exactly --steps, which bench_ablation.py scores)
    (best,) = run_dir.glob("checkpoints/best-*.ckpt")
    best_step = torch.load(best, map_location="cpu", weights_only=False)["global_step"]
    eval_json = run_dir / "eval_test.json"
    eval_cmd = [str(BIN / "vrnn-eval"), "--ckpt", str(best)]
    eval_cmd += ["--out", str(eval_json), f"eval.iw_samples={args.iw_samples}"]
    print(f"{variant}: evaluating ...", flush=True)
    eval_s = run(eval_cmd, run_dir / "eval.log", args.threads)
    result = {
        "settings": settings,
        "variant": variant,
        "eval": json.loads(eval_json.read_text()),
        "best_step": best_step,
        "best_val_elbo": max(val.values()),
        "fit_seconds": fit_s,
        "eval_seconds": eval_s,
        "params": sum(p.numel() for p in VRNN(variant, x_dim=200, **SIZES[args.size]).parameters()),
    }
    done.write_text(json.dumps(result, indent=2) + "\n")
    return result


def table_cells(result: dict) -> tuple[str, str]:
    """Table 1's cell (exact LL, or the named bounds) per sequence, with report.py's
    formatting, and ELBO / IWAE(K) per frame."""
    ev, variant = result["eval"], result["variant"]
    run = RunResult(variant, variant, "fsdd", 0, variant, result["best_val_elbo"], ev)
    per_seq = cell_text(variant, Cell([run]))
    elbo, iwae = ev["elbo"]["per_frame"], ev["iwae"]["per_frame"]
    k = ev["iw_samples"]
    per_frame = (
        f"{elbo:.2f}"
        if variant.startswith("rnn")
        else f"ELBO >= {elbo:.2f} / IWAE({k}) >= {iwae:.2f}"
    )
    return per_seq, per_frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=960, help="optimiser steps per variant")
    parser.add_argument(
        "--val-every",
        type=int,
        default=40,
        help="batches per epoch: must divide --steps and not exceed FSDD's 47",
    )
    parser.add_argument("--size", choices=list(SIZES), default="small")
    parser.add_argument("--seed", type=int, default=1234)
    # one thread: on a shared, busy CPU two threads per process ran 3x slower, not faster
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--iw-samples", type=int, default=40, help="K of IWAE and the paper's")
    parser.add_argument("--variants", nargs="+", choices=ROWS, default=list(ROWS))
    parser.add_argument("--out", default=str(ROOT / "bench/out/fsdd_variants"))
    parser.add_argument(
        "--data-root",
        default=str(ROOT.parent / "shared/data/fsdd/recordings"),
        help="FSDD's recordings (default: the 5-speaker copy beside the repository)",
    )
    args = parser.parse_args()
    if args.steps % args.val_every:
        parser.error(f"--steps {args.steps} is not a multiple of --val-every {args.val_every}")

    start = time.perf_counter()
    results = [train_and_eval(args, v) for v in ROWS if v in args.variants]
    total = time.perf_counter() - start

    first = results[0]["eval"]
    widths = " ".join(f"{k}={v}" for k, v in SIZES[args.size].items())
    print()
    print("FSDD (conf/fsdd.yaml), test split: average log-likelihood in nats (higher is better)")
    print(f"  budget: {args.steps} Adam steps per variant, batch 32 windows of 40 frames, lr 1e-3,")
    print(
        f"  seed {args.seed}, validation every {args.val_every} steps, the best val/elbo "
        f"checkpoint scored; size '{args.size}': {widths}"
    )
    print(
        f"  test: {first['n_sequences']} whole recordings, {first['n_frames']} frames of 200 "
        f"samples (8 kHz); IWAE and the paper's per-step estimate with K={args.iw_samples}"
    )
    print(f"  torch threads per process: {args.threads}")
    print()
    header = (
        f"{'model':<13} {'per sequence':>24} {'per frame':>22} {'paper ≈/seq':>12} "
        f"{'val ELBO':>9} {'best step':>9} {'params':>9} {'fit s':>6} {'eval s':>6}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        ev = r["eval"]
        paper = (
            "" if r["variant"].startswith("rnn") else f"{ev['paper_estimate']['per_sequence']:.1f}"
        )
        per_seq, per_frame = table_cells(r)
        print(
            f"{NAMES[r['variant']]:<13} {per_seq:>24} {per_frame:>22} "
            f"{paper:>12} {r['best_val_elbo']:>9.1f} {r['best_step']:>9} {r['params']:>9,} "
            f"{r['fit_seconds']:>6.0f} {r['eval_seconds']:>6.0f}"
        )
    print(f"\nwall time {total / 60:.1f} min (cached variants count 0)")


if __name__ == "__main__":
    main()
