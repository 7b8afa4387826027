"""Training-step time of the autoregressive output head against the paper's (independent).

At the paper's TIMIT size (LSTM 2000, z 200, four-layer MLPs of 300-400, a 200-sample frame,
20-component mixtures), one training step (forward, backward, Adam) of the same variant with
``model.output=independent`` and ``model.output=autoregressive``, interleaved (this machine
is shared and noisy), median over --repeats; the ratio is the autoregressive head's cost
(the target: at most 2x). One thread by default, so that the figure does not depend on how
busy the other cores are.

    python bench/bench_output_head.py                       # vrnn_gmm and rnn_gmm, batch 4
    python bench/bench_output_head.py --variants vrnn_gmm --batch 8 --repeats 7
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from vrnn_lightning.model import VRNN  # noqa: E402

TIMIT = dict(h_dim=2000, z_dim=200, phi_x_dim=400, phi_z_dim=300, enc_dim=300, prior_dim=300,
             dec_dim=400, mlp_layers=4, n_components=20)  # fmt: skip
X_DIM = 200


def timed_step(model, batch: int, steps: int):
    """A function that runs one training step of ``model`` on a fixed batch and returns its
    seconds."""
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-4, fused=True)
    x = torch.randn(batch, steps, model.x_dim)

    def step() -> float:
        start = time.perf_counter()
        optimiser.zero_grad(set_to_none=True)
        terms = model(x)
        loss = -(terms.log_px - terms.kl).sum(1).mean()
        loss.backward()
        optimiser.step()
        return time.perf_counter() - start

    return step


def make_step(variant: str, output: str, batch: int, steps: int):
    torch.manual_seed(0)
    model = VRNN(variant, x_dim=X_DIM, output=output, **TIMIT)
    params = sum(p.numel() for p in model.parameters())
    return timed_step(model, batch, steps), params


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=["vrnn_gmm", "rnn_gmm"])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=40, help="frames per sequence")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(
        f"TIMIT size (h 2000, D {X_DIM}, K 20), batch {args.batch} x {args.steps} frames, "
        f"{args.threads} thread(s), median of {args.repeats} training steps"
    )
    print(f"{'variant':<12} {'independent':>12} {'autoregr.':>12} {'ratio':>7} {'params +':>9}")
    for variant in args.variants:
        steps = {out: make_step(variant, out, args.batch, args.steps)
                 for out in ("independent", "autoregressive")}  # fmt: skip
        for step, _ in steps.values():  # warm-up: first-call allocations, thread pools
            step()
            step()
        times = {out: [] for out in steps}
        for _ in range(args.repeats):
            for out, (step, _) in steps.items():
                times[out].append(step())
        ind, ar = (statistics.median(times[o]) for o in ("independent", "autoregressive"))
        extra = steps["autoregressive"][1] / steps["independent"][1] - 1
        print(f"{variant:<12} {ind * 1e3:>10.0f}ms {ar * 1e3:>10.0f}ms {ar / ind:>6.2f}x "
              f"{extra:>8.0%}")  # fmt: skip


if __name__ == "__main__":
    main()
