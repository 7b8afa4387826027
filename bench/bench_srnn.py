"""Training-step time of SRNN against the VRNN at the same sizes (the target: at most 1.6x).

At the paper's TIMIT size (LSTM 2000, z 200, four-layer MLPs of 300-400, 200-sample frames,
20-component mixtures), one training step (forward, backward, Adam) of vrnn_gmm and of
srnn_gmm (res_q on, as Fraccaro et al.'s best), interleaved in one process, median over
--repeats. SRNN has two LSTMs over the sequence (d forward, a backward) where the VRNN has
one, but they run as nn.LSTM passes outside the per-step loop, whose work (the encoder and,
with res_q, the prior from z_{t-1}) is smaller than the VRNN's (the LSTM cell and the encoder
from h_{t-1}). One thread by default, so that the figure does not depend on the other cores.

    python bench/bench_srnn.py                  # batch 4 x 40 frames, one thread
    python bench/bench_srnn.py --batch 16 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from bench.bench_output_head import TIMIT, X_DIM, timed_step  # noqa: E402
from vrnn_lightning.family import build_model  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=40, help="frames per sequence")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(
        f"TIMIT size (h 2000, z 200, D {X_DIM}, K 20), batch {args.batch} x {args.steps} "
        f"frames, {args.threads} thread(s), median of {args.repeats} training steps"
    )
    steps = {}
    for variant in ("vrnn_gmm", "srnn_gmm"):
        torch.manual_seed(0)
        model = build_model(variant, x_dim=X_DIM, **TIMIT)
        steps[variant] = (timed_step(model, args.batch, args.steps), model)
    for step, _ in steps.values():  # warm-up: first-call allocations, thread pools
        step()
        step()
    times = {variant: [] for variant in steps}
    for _ in range(args.repeats):
        for variant, (step, _) in steps.items():
            times[variant].append(step())
    vrnn, srnn = (statistics.median(times[v]) for v in ("vrnn_gmm", "srnn_gmm"))
    params = {v: sum(p.numel() for p in m.parameters()) for v, (_, m) in steps.items()}
    print(f"vrnn_gmm {vrnn * 1e3:.0f} ms ({params['vrnn_gmm'] / 1e6:.1f}M parameters)")
    print(f"srnn_gmm {srnn * 1e3:.0f} ms ({params['srnn_gmm'] / 1e6:.1f}M parameters)")
    print(f"ratio {srnn / vrnn:.2f}x")


if __name__ == "__main__":
    main()
