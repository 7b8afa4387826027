"""Evaluation and generation speed.

(a) IWAE with K samples against K separate ELBO passes, at the small (demo) size: the K
    samples of each sequence run as one batch of K * B rows, so the cost should stay well
    under K x the cost of one ELBO pass (target: <= 0.6 x (K x ELBO)).
(b) Generation real-time factor for 16 kHz audio (200-sample frames) at batch 1 with the
    TIMIT-sized VRNN-GMM: seconds of compute per second of audio (target: < 1).
(c) SMC(K) against IWAE(K) at the small and TIMIT sizes: the particle filter runs the step
    API (every network inside the loop, resampling between steps), IWAE the fused forward.
    SMC is timed without resampling (ESS threshold 0), at the default threshold (K/2) and
    resampling at every step (threshold 1): the last against the first is what resampling
    (the ESS, the ancestor draws, the gather of the states) costs.

    python bench/bench_inference.py [--repeats 5] [--k 40] [--parts a b c]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from bench.bench_training import SIZES  # noqa: E402
from vrnn_lightning import estimators  # noqa: E402
from vrnn_lightning.allocator import reuse_freed_memory  # noqa: E402
from vrnn_lightning.model import VRNN  # noqa: E402


def seconds(fn) -> float:
    """One timed call (the caller warms up)."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median_time(fn, repeats: int) -> float:
    fn()  # warm up
    return statistics.median(seconds(fn) for _ in range(repeats))


@torch.no_grad()
def bench_iwae(k: int, repeats: int) -> None:
    spec = SIZES["small"]
    print(f"(a) IWAE at the small size, batch {spec['batch']} x {spec['steps']} frames")
    for compile in (False, True):
        torch.manual_seed(0)
        model = VRNN("vrnn_gmm", x_dim=200, compile=compile, **spec["model"]).eval()
        x = torch.randn(spec["batch"], spec["steps"], 200)

        def elbo(model=model, x=x):
            return estimators.elbo(model, x)

        def iwae(model=model, x=x):
            return estimators.iwae(model, x, k=k)

        iwae()  # compiles (compile=True) outside the timing
        elbo()
        # side by side, round by round: each IWAE pass against the ELBO passes timed just
        # before it (a host whose speed drifts moves both), the ratio's median over rounds
        elbos, iwaes = [], []
        for _ in range(repeats):  # both warmed up above: no untimed pass inside the rounds
            elbos.append(statistics.median(seconds(elbo) for _ in range(9)))
            iwaes.append(seconds(iwae))
        ratio = statistics.median(i / (k * e) for e, i in zip(elbos, iwaes, strict=True))
        print(f"    model.compile={compile}")
        print(f"      one ELBO pass            {statistics.median(elbos) * 1e3:9.1f} ms")
        print(f"      IWAE, K={k} (one batch)   {statistics.median(iwaes) * 1e3:9.1f} ms")
        print(f"      IWAE / (K x ELBO)        {ratio:9.2f}   (target <= 0.60; median of "
              f"{repeats} rounds)")  # fmt: skip
    print()


@torch.no_grad()
def bench_generation(repeats: int, seconds: float) -> None:
    spec = SIZES["timit"]
    torch.manual_seed(0)
    model = VRNN("vrnn_gmm", x_dim=200, **spec["model"]).eval()
    sample_rate, frame = 16_000, 200
    steps = int(seconds * sample_rate / frame)
    gen = median_time(lambda: model.generate(1, steps), repeats)
    rtf = gen / seconds
    print(f"(b) generation, TIMIT-sized VRNN-GMM (h 2000), batch 1, {seconds:g} s of 16 kHz audio")
    print(f"    {steps} steps in {gen:.2f} s = {gen / steps * 1e3:.1f} ms/step")
    print(f"    real-time factor         {rtf:9.2f}   (target < 1)")


@torch.no_grad()
def bench_smc(k: int, repeats: int, timit_batch: int) -> None:
    print(f"(c) SMC({k}) against IWAE({k}), vrnn_gmm, eager")
    for name in ("small", "timit"):
        spec = SIZES[name]
        batch = spec["batch"] if name == "small" else timit_batch
        torch.manual_seed(0)
        model = VRNN("vrnn_gmm", x_dim=200, **spec["model"]).eval()
        x = torch.randn(batch, spec["steps"], 200)
        iwae = median_time(lambda: estimators.iwae(model, x, k=k), repeats)  # noqa: B023
        smc = {
            threshold: median_time(
                lambda t=threshold: estimators.smc(model, x, k=k, ess_threshold=t),  # noqa: B023
                repeats,
            )
            for threshold in (0.0, 0.5, 1.0)
        }
        print(f"    {name}: batch {batch} x {spec['steps']} frames, K * B = {k * batch} rows")
        print(f"      {f'IWAE({k}), fused forward':<28} {iwae * 1e3:9.1f} ms")
        for threshold, label in ((0.0, "no resampling"), (0.5, "ESS < K/2"), (1.0, "every step")):
            t = smc[threshold]
            label = f"SMC({k}), {label}"
            print(f"      {label:<28} {t * 1e3:9.1f} ms  ({t / iwae:.2f} x IWAE)")
        share = (smc[1.0] - smc[0.0]) / smc[1.0]
        print(f"      resampling every step: {100 * share:.0f}% of SMC's time")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--k", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=2.0, help="audio to generate")
    parser.add_argument("--parts", nargs="+", choices=("a", "b", "c"), default=["a", "b", "c"])
    parser.add_argument("--timit-batch", type=int, default=4, help="(c): sequences at TIMIT size")
    args = parser.parse_args()
    reuse_freed_memory()  # the allocator as vrnn-eval sets it (bench/bench_allocator.py)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    if "a" in args.parts:
        bench_iwae(args.k, args.repeats)
    if "c" in args.parts:
        bench_smc(args.k, args.repeats, args.timit_batch)
    if "b" in args.parts:
        bench_generation(args.repeats, args.seconds)


if __name__ == "__main__":
    main()
