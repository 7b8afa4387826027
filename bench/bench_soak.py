"""Soak: resident memory over thousands of training steps must stay flat.

Each case runs in a fresh process. Training cases run the real `vrnn-fit` loop
(``training.train``: Lightning, the module's noise generator, metrics, logging, checkpoints
after every validation, the sample callback) on conf/demo.yaml with one variant of each family
(rnn_*, vrnn_*, vrnn_i_*), in fp32 and bf16-mixed, and at a larger size for fewer steps; a
callback samples resident memory (and CUDA memory on a GPU) every few steps and counts live
tensors after a full garbage collection at the end of warm-up and at the end. Memory is
sampled twice: raw resident memory, and "held" memory, resident after glibc returns its free
heap pages (``memory.held_mb``, malloc_trim): raw resident memory swings by tens of MB from
step to step as freed buffers are kept or returned, held memory stays within 0.1 MB over a
training loop, so it is the measure that can see a leak of 1 MB. The evaluation case scores
batches with IWAE K=40 (`estimators.importance_estimates`, as vrnn-eval does) again and
again. The loop cases are the leak report's plain forward/backward/zero_grad loop at h 128
for every variant, with and without gc.collect() after each step, measured over 100 steps
after 20 warm-up steps.

Columns: held memory at the start and end of the measured steps (after warm-up: the first
quarter of the steps), the least-squares slope of held memory in MB per 1,000 steps (target
under 1), its rise, the rise of raw resident memory's floor (the lowest sample of the last
fifth minus that of the first fifth: transient buffers lift single samples, not the floor),
and live tensors after gc at the end minus at the end of warm-up. W&B is off (its offline
writer runs in its own process anyway).

    python bench/bench_soak.py                       # 2,000 demo steps, 300 large, eval 300
    python bench/bench_soak.py --only loop           # the leak report's plain loop, h 128
    python bench/bench_soak.py --steps 400 --large-steps 60 --eval-batches 60   # quick look
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere
from vrnn_lightning.allocator import reuse_freed_memory  # noqa: E402

FAMILIES = {"rnn_*": "rnn_gmm", "vrnn_*": "vrnn_gmm", "vrnn_i_*": "vrnn_i_gmm"}
LARGE = [  # h 1024, z 128, four-layer MLPs: between the demo and the paper's TIMIT size
    "model.h_dim=1024",
    "model.z_dim=128",
    "model.phi_x_dim=400",
    "model.phi_z_dim=300",
    "model.enc_dim=300",
    "model.prior_dim=300",
    "model.dec_dim=400",
    "model.mlp_layers=4",
    "model.n_components=20",
]


def growth(steps: np.ndarray, mb: np.ndarray, warm: float = 0.25) -> tuple[float, float]:
    """After warm-up (the first quarter): (the least-squares slope in MB per 1,000 steps, the
    floor's rise). The floor is the lowest sample of a fifth of the samples: a step's
    transient buffers (which glibc maps and unmaps) lift single samples by tens of MB but not
    the floor, while memory that stays lifts it; the rise is the last fifth's floor minus the
    first fifth's."""
    keep = steps >= steps.max() * warm
    s, m = steps[keep], mb[keep]
    slope = np.polyfit(s, m, 1)[0] * 1000 if len(s) > 2 else float("nan")
    fifth = max(len(m) // 5, 1)
    return float(slope), float(m[-fifth:].min() - m[:fifth].min())


def train_case(variant: str, precision: str, steps: int, large: bool, workdir: str) -> dict:
    """Runs in the child: one vrnn-fit run with a memory probe."""
    from vrnn_lightning.config import load_config
    from vrnn_lightning.memory import MemoryProbe
    from vrnn_lightning.training import train

    warm = max(steps // 4, 1)
    cfg = load_config(
        REPO / "conf" / "demo.yaml",
        [
            f"model.variant={variant}",
            f"trainer.precision={precision}",
            f"trainer.max_steps={steps}",
            "trainer.max_epochs=-1",
            "trainer.enable_progress_bar=false",
            "trainer.accelerator=auto",
            "trainer.devices=1",
            "logger.wandb.mode=disabled",
            f"data.cache_dir={workdir}/cache",
            f"out_dir={workdir}/run",
            *(LARGE if large else []),  # validation every epoch (~27 steps) either way
        ],
    )
    probe = MemoryProbe(every=5, count_tensors_at=(warm, steps))
    start = time.perf_counter()
    train(cfg, extra_callbacks=[probe])
    return {
        "samples": probe.samples,
        "tensors": probe.tensors,
        "seconds": time.perf_counter() - start,
    }


def eval_case(batches: int) -> dict:
    """Runs in the child: IWAE K=40 over demo-sized batches, again and again."""
    import torch

    from vrnn_lightning.estimators import importance_estimates
    from vrnn_lightning.memory import held_mb, live_tensors, resident_mb
    from vrnn_lightning.model import VRNN

    torch.manual_seed(0)
    model = VRNN(
        "vrnn_gmm", x_dim=200, h_dim=256, z_dim=32, phi_x_dim=128, phi_z_dim=64,
        enc_dim=128, prior_dim=128, dec_dim=128, mlp_layers=2, n_components=5,
    ).eval()  # fmt: skip
    x = torch.randn(16, 40, 200)
    mask = torch.ones(16, 40, dtype=torch.bool)
    samples, tensors = [], {}
    warm = max(batches // 4, 1)
    start = time.perf_counter()
    with torch.no_grad():
        for i in range(1, batches + 1):
            importance_estimates(model, x, mask, k=40)
            if i % 5 == 0:
                samples.append((i, resident_mb(), 0.0, held_mb()))
            if i in (warm, batches):
                tensors[i] = live_tensors()
    return {"samples": samples, "tensors": tensors, "seconds": time.perf_counter() - start}


def loop_case(variant: str, collect: bool, steps: int) -> dict:
    """Runs in the child: the plain loop of the leak report (forward, backward, zero_grad) at
    h 128, batch 32 x 40 frames of 200, with or without gc.collect() after every step."""
    import gc

    import torch

    from vrnn_lightning.memory import held_mb, live_tensors, resident_mb
    from vrnn_lightning.model import VRNN

    torch.manual_seed(0)
    model = VRNN(
        variant, x_dim=200, h_dim=128, z_dim=16, phi_x_dim=64, phi_z_dim=64, enc_dim=64,
        prior_dim=64, dec_dim=64, mlp_layers=2, n_components=5,
    )  # fmt: skip
    x = torch.randn(32, 40, 200)
    samples, tensors = [], {}
    warm, steps = 20, steps + 20  # growth over ``steps`` steps after 20 warm-up steps
    start = time.perf_counter()
    for i in range(1, steps + 1):
        terms = model(x)
        (-(terms.log_px - terms.kl).sum()).backward()
        model.zero_grad()
        del terms
        if collect:
            gc.collect()
        samples.append((i, resident_mb(), 0.0, held_mb()))
        if i in (warm, steps):
            tensors[i] = live_tensors()
    return {"samples": samples, "tensors": tensors, "seconds": time.perf_counter() - start}


def run_child(args: list[str], threads: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        cmd = [sys.executable, __file__, "--child", json.dumps(args), "--json", str(out)]
        cmd += ["--workdir", tmp]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"case {args} failed:\n{proc.stderr[-3000:]}")
        return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000, help="demo-size training steps")
    parser.add_argument("--large-steps", type=int, default=300)
    parser.add_argument("--eval-batches", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--precisions", nargs="+", default=["32-true", "bf16-mixed"])
    parser.add_argument(
        "--only",
        nargs="+",
        choices=["loop", "demo", "large", "eval"],
        default=["loop", "demo", "large", "eval"],
    )
    parser.add_argument("--loop-steps", type=int, default=100, help="after 20 warm-up steps")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--json", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:  # one case, in this fresh process, its allocator set as vrnn-fit sets it
        reuse_freed_memory()
        kind, *rest = json.loads(args.child)
        if kind == "train":
            result = train_case(*rest, args.workdir)
        else:
            result = eval_case(*rest) if kind == "eval" else loop_case(*rest)
        Path(args.json).write_text(json.dumps(result))
        return

    cases = []
    for variant in ("rnn_gauss", "rnn_gmm", "vrnn_gauss", "vrnn_gmm", "vrnn_i_gauss", "vrnn_i_gmm"):
        for collect in (False, True):
            name = f"loop {variant}{' gc' if collect else ''}"
            cases.append(
                (name, "32-true", args.loop_steps, ["loop", variant, collect, args.loop_steps])
            )
    for precision in args.precisions:
        for family, variant in FAMILIES.items():
            cases.append(
                (
                    f"demo {family}",
                    precision,
                    args.steps,
                    ["train", variant, precision, args.steps, False],
                )
            )
    for family, variant in FAMILIES.items():
        cases.append(
            (
                f"large {family}",
                "32-true",
                args.large_steps,
                ["train", variant, "32-true", args.large_steps, True],
            )
        )
    cases.append(("eval IWAE K=40", "32-true", args.eval_batches, ["eval", args.eval_batches]))
    cases = [case for case in cases if case[0].split()[0] in args.only]
    print(f"threads per case: {args.threads}; growth after warm-up (the first quarter of steps)")
    header = (
        f"{'case':<22}{'precision':<12}{'steps':>6}{'held start':>11}{'held end':>9}"
        f"{'MB/1k steps':>12}{'held rise':>10}{'raw floor rise':>15}{'tensors':>8}{'wall s':>7}"
    )
    print(header)
    print("-" * len(header))
    worst = 0.0
    for name, precision, steps, child_args in cases:
        result = run_child(child_args, args.threads)
        data = np.array(result["samples"], dtype=float)
        warm = 0.25
        if name.startswith("loop"):  # after the 20 warm-up steps, not the first quarter
            data, warm = data[data[:, 0] > 20], 0.0
        slope, held_rise = growth(data[:, 0], data[:, 3], warm)
        _, raw_rise = growth(data[:, 0], data[:, 1], warm)
        kept = data[data[:, 0] >= data[:, 0].max() * warm]
        held_rise = kept[-1, 3] - kept[0, 3]
        worst = max(worst, slope)
        counts = sorted(result["tensors"].items(), key=lambda kv: int(kv[0]))
        tensors = counts[-1][1] - counts[0][1] if len(counts) == 2 else float("nan")
        print(
            f"{name:<22}{precision:<12}{steps:>6}{kept[0, 3]:>11.1f}{kept[-1, 3]:>9.1f}"
            f"{slope:>12.2f}{held_rise:>10.2f}{raw_rise:>15.2f}{tensors:>+8.0f}"
            f"{result['seconds']:>7.0f}",
            flush=True,
        )
        if data[:, 2].any():
            cslope, _ = growth(data[:, 0], data[:, 2], warm)
            print(f"{'':<22}CUDA allocated: {cslope:.2f} MB per 1k steps")
    print(f"worst growth of held memory: {worst:.2f} MB per 1,000 steps (target < 1)")


if __name__ == "__main__":
    main()
