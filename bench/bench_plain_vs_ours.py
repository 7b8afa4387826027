"""The project against the plain reference VRNN (bench/plain_vrnn.py), side by side at the same
budget on conf/fsdd.yaml's speaker split (train jackson, nicolas, yweweler; test theo), issue 24.

For each (variant, seed) both implementations train the same widths (h 256, z 32, every MLP
192, 10 components), batch 32, --steps Adam steps (lr: conf/fsdd.yaml's for ours, 3e-3,
unless --ours-lr; the plain recipe's 1e-3 for plain), and score their model after
exactly --steps on the test speaker's whole recordings (test ELBO per frame in nats; rnn_*:
the exact log-likelihood):

- ours: ``vrnn-fit --config conf/fsdd.yaml`` with those widths and ``trainer.max_steps``,
  ``trainer.early_stopping_patience=0``, no validation (``trainer.limit_val_batches=0``: the
  last checkpoint is scored, so validation would only cost time), then ``vrnn-eval`` on
  ``last.ckpt`` with K = 1;
- plain: ``python bench/plain_vrnn.py`` (its recipe: whole recordings, the per-frame loss,
  clip 5, PyTorch's initialisation), scored the way vrnn-eval scores.

One process at a time, one thread. Each run's result is a JSON file under --out; a rerun skips
every run whose settings are unchanged, so the command resumes where it stopped. Printed: per
variant, each implementation's mean and 95% interval over seeds, and the paired difference
ours - plain over seeds (vrnn_lightning/paired.py) with its verdict.

    python bench/bench_plain_vs_ours.py                       # 3 variants x 3 seeds x 2
    python bench/bench_plain_vs_ours.py --steps 20 --seeds 1  # a smoke test of the whole path
    python bench/bench_plain_vs_ours.py --report              # the table of the runs so far
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere
from vrnn_lightning.paired import T_975, compare  # noqa: E402

BIN = Path(sys.executable).parent
VARIANTS = ("rnn_gmm", "vrnn_gauss", "vrnn_gmm")
IMPLS = ("ours", "plain")
H, Z, WIDTH, K = 256, 32, 192, 10


def ours_fit(args, variant: str, seed: int, run_dir: Path) -> list[str]:
    widths = dict(h_dim=H, z_dim=Z, phi_x_dim=WIDTH, phi_z_dim=WIDTH, enc_dim=WIDTH,
                  prior_dim=WIDTH, dec_dim=WIDTH, mlp_layers=2, n_components=K)  # fmt: skip
    return [
        f"model.variant={variant}",
        *[f"model.{k}={v}" for k, v in widths.items()],
        "data.batch_size=32",
        f"data.root={args.data_root}",
        "data.download=null",
        # the conf's own learning rate unless --ours-lr: the project as a user runs it
        *([f"optim.lr={args.ours_lr}"] if args.ours_lr is not None else []),
        *args.ours_extra,
        f"seed={seed}",
        f"name=plain_vs_ours_{variant}",
        f"out_dir={run_dir}",
        f"trainer.max_steps={args.steps}",
        "trainer.early_stopping_patience=0",
        "trainer.limit_val_batches=0",
        "trainer.enable_progress_bar=false",
        "logger.wandb.mode=disabled",
        "sample.every_n_validations=0",
    ]


def plain_args(args, variant: str, seed: int, out: Path) -> list[str]:
    return [
        f"--variant={variant}", f"--seed={seed}", f"--steps={args.steps}", f"--h-dim={H}",
        f"--z-dim={Z}", f"--width={WIDTH}", f"--components={K}", "--batch-size=32",
        f"--lr={args.plain_lr}", f"--data-root={args.data_root}", *args.plain_extra, f"--out={out}",
    ]  # fmt: skip


def call(cmd: list[str], log: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with open(log, "w") as f:
        code = subprocess.call(cmd, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT)
    if code != 0:
        sys.exit(f"failed (exit {code}): {' '.join(cmd)}\n{log.read_text()[-3000:]}")


def run_one(args, impl: str, variant: str, seed: int, train: bool) -> dict | None:
    """The result of one run ({"per_frame", "per_sequence", "seconds", ...}), trained and
    scored unless a finished one with the same settings exists; None if not done and not
    ``train``."""
    run_dir = Path(args.out).resolve() / impl / variant / f"seed{seed}"
    result_file = run_dir / "result.json"
    if impl == "ours":
        settings = ours_fit(args, variant, seed, run_dir)
    else:
        settings = plain_args(args, variant, seed, run_dir / "plain.json")
    if result_file.is_file():
        result = json.loads(result_file.read_text())
        if result["settings"] == settings:
            return result
    if not train:
        return None
    run_dir.mkdir(parents=True, exist_ok=True)
    print(f"{impl} {variant} seed {seed}: training ...", flush=True)
    start = time.perf_counter()
    if impl == "ours":
        for old in ("checkpoints", "csv"):  # never resume an older run
            shutil.rmtree(run_dir / old, ignore_errors=True)
        call([str(BIN / "vrnn-fit"), "--config", "conf/fsdd.yaml", *settings], run_dir / "fit.log")
        fit_s = time.perf_counter() - start
        eval_json = run_dir / "eval_test.json"
        last = run_dir / "checkpoints" / "last.ckpt"
        call([str(BIN / "vrnn-eval"), "--ckpt", str(last), "--out", str(eval_json),
              "eval.iw_samples=1"], run_dir / "eval.log")  # fmt: skip
        elbo = json.loads(eval_json.read_text())["elbo"]
        scores = {"per_frame": elbo["per_frame"], "per_sequence": elbo["per_sequence"]}
    else:
        call([sys.executable, str(ROOT / "bench/plain_vrnn.py"), *settings], run_dir / "fit.log")
        plain = json.loads((run_dir / "plain.json").read_text())
        fit_s = plain["fit_seconds"]
        scores = {"per_frame": plain["per_frame"], "per_sequence": plain["per_sequence"]}
    result = {"settings": settings, **scores, "fit_seconds": fit_s,
              "seconds": time.perf_counter() - start}  # fmt: skip
    result_file.write_text(json.dumps(result, indent=2) + "\n")
    print(f"  {scores['per_frame']:.2f} nats per frame, {result['seconds']:.0f} s", flush=True)
    return result


def mean_interval(values: list[float]) -> str:
    if not values:
        return "-"
    m = statistics.fmean(values)
    if len(values) < 2:
        return f"{m:.2f} [n=1]"
    hw = T_975[len(values) - 2] * statistics.stdev(values) / math.sqrt(len(values))
    return f"{m:.2f} ± {hw:.2f}"


def paired_text(p) -> str:
    """ "mean [95% interval]  verdict" of a paired comparison (first minus second)."""
    if p.n < 2:
        return f"{p.mean:+.2f}  n={p.n}" if p.n else "-  n=0"
    lo, hi = p.mean - p.half_width, p.mean + p.half_width
    verdict = {0: "not resolved", 1: "first higher", -1: "second higher"}[p.direction]
    return f"{p.mean:+.2f} [{lo:+.2f}, {hi:+.2f}]  {verdict}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--seeds", type=int, default=3, help="seeds 1..N")
    parser.add_argument("--ours-lr", type=float, help="default: conf/fsdd.yaml's optim.lr")
    parser.add_argument("--plain-lr", type=float, default=1e-3, help="the plain recipe's")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--impls", nargs="+", choices=IMPLS, default=list(IMPLS))
    parser.add_argument("--ours-extra", nargs="*", default=[], help="more vrnn-fit overrides")
    parser.add_argument("--plain-extra", nargs="*", default=[], help="more plain_vrnn.py args")
    parser.add_argument("--out", default=str(ROOT / "runs/plain_vs_ours"))
    parser.add_argument("--data-root", default=str(ROOT.parent / "shared/data/fsdd/recordings"))
    parser.add_argument("--report", action="store_true", help="train nothing: the table so far")
    parser.add_argument(
        "--against",
        help="another --out folder: also print ours here - ours there, paired over seeds (a "
        "one-difference move such as --ours-lr 0.001 against the conf's lr)",
    )
    args = parser.parse_args()
    args.data_root = str(Path(args.data_root).resolve())

    start = time.perf_counter()
    seeds = range(1, args.seeds + 1)
    results: dict = {}
    for seed in seeds:  # seed-major: a stopped run leaves whole seeds of every cell
        for variant in args.variants:
            for impl in args.impls:
                r = run_one(args, impl, variant, seed, not args.report)
                if r is not None:
                    results[impl, variant, seed] = r

    print()
    print(
        f"FSDD speaker split (test theo), test ELBO per frame in nats (rnn_*: exact LL), "
        f"{args.steps} Adam steps, batch 32, lr ours {args.ours_lr or 'conf'} plain "
        f"{args.plain_lr:g}, h {H} z {Z} MLPs {WIDTH} K {K}, "
        f"seeds 1..{args.seeds}; mean ± 95% interval over seeds"
    )
    print(f"{'variant':<11} {'ours':>16} {'plain':>16} {'ours - plain':>26}  verdict   s/run")
    for v in args.variants:
        by = {i: {s: results[i, v, s]["per_frame"] for s in seeds if (i, v, s) in results}
              for i in IMPLS}  # fmt: skip
        diff, verdict = paired_text(compare(by["ours"], by["plain"])).split("  ")
        took = {i: [results[i, v, s]["seconds"] for s in seeds if (i, v, s) in results]
                for i in IMPLS}  # fmt: skip
        secs = "/".join(f"{statistics.fmean(t):.0f}" if t else "-" for t in took.values())
        print(
            f"{v:<11} {mean_interval(list(by['ours'].values())):>16} "
            f"{mean_interval(list(by['plain'].values())):>16} {diff:>26}  {verdict}  {secs}"
        )
        per_seed = "; ".join(
            f"{i} " + " / ".join(f"{by[i][s]:.2f}" for s in sorted(by[i])) for i in IMPLS
        )
        print(f"{'':<11} per seed: {per_seed}")
    if args.against:
        print(f"\nours here - ours in {args.against}, paired over seeds:")
        for v in args.variants:
            here = {
                s: results["ours", v, s]["per_frame"] for s in seeds if ("ours", v, s) in results
            }
            there = {}
            for s in seeds:
                f = Path(args.against) / "ours" / v / f"seed{s}" / "result.json"
                if f.is_file():
                    there[s] = json.loads(f.read_text())["per_frame"]
            print(f"{v:<11} {paired_text(compare(here, there))}")
    print(f"\nwall time {(time.perf_counter() - start) / 60:.1f} min (finished runs count 0)")


if __name__ == "__main__":
    main()
