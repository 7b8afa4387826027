"""The scale heads' softplus: F.softplus against distributions.softplus (the same values in
passes CPU torch vectorises), side by side in one process on one thread.

Prints the forward of one decoder slice's scales (2,048 rows x K*D = 1,000, the small GMM's),
then one ELBO pass, IWAE with K = 40 and a training step (forward, backward, Adam) of the
small-size VRNN-GMM with each softplus in the heads, medians of --repeats alternating rounds.

    python bench/bench_softplus.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
import vrnn_lightning.distributions as heads  # noqa: E402
from bench.bench_training import SIZES  # noqa: E402
from vrnn_lightning import estimators  # noqa: E402
from vrnn_lightning.allocator import reuse_freed_memory  # noqa: E402
from vrnn_lightning.model import VRNN  # noqa: E402

OURS = heads._std


def torch_std(raw: torch.Tensor, min_std: float) -> torch.Tensor:
    return F.softplus(raw.float()) + min_std


def seconds(fn, n: int) -> float:
    fn()  # warm up
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    reuse_freed_memory()  # the allocator as the commands set it (bench/bench_allocator.py)

    raw = torch.randn(2048, 1000) * 3
    op = {"F.softplus": [], "ours": []}
    for _ in range(args.repeats):
        op["F.softplus"].append(seconds(lambda: F.softplus(raw), 10))
        op["ours"].append(seconds(lambda: heads.softplus(raw), 10))
    a, b = (statistics.median(op[k]) for k in ("F.softplus", "ours"))
    print(f"softplus forward, 2048 x 1000 floats: F.softplus {a * 1e3:.1f} ms, ours "
          f"{b * 1e3:.1f} ms ({a / b:.2f}x)")  # fmt: skip

    spec = SIZES["small"]
    torch.manual_seed(0)
    model = VRNN("vrnn_gmm", x_dim=200, **spec["model"])
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-5)
    x = torch.randn(spec["batch"], spec["steps"], 200)

    def train() -> None:
        optimiser.zero_grad()
        (-estimators.elbo(model, x).per_sequence.sum()).backward()
        optimiser.step()

    def elbo() -> None:
        with torch.no_grad():
            estimators.elbo(model, x)

    def iwae() -> None:
        with torch.no_grad():
            estimators.iwae(model, x, k=40)

    times = {}
    for _ in range(args.repeats):
        for name, std in (("F.softplus", torch_std), ("ours", OURS)):
            heads._std = std
            for what, fn, n in (
                ("ELBO pass", elbo, 5),
                ("IWAE K=40", iwae, 1),
                ("train step", train, 5),
            ):
                times.setdefault((what, name), []).append(seconds(fn, n))
    heads._std = OURS
    median = {key: statistics.median(v) for key, v in times.items()}
    print(f"small-size VRNN-GMM, batch {spec['batch']} x {spec['steps']}, one thread, medians:")
    for what in ("ELBO pass", "IWAE K=40", "train step"):
        a, b = median[what, "F.softplus"], median[what, "ours"]
        print(f"  {what:<11} F.softplus {a * 1e3:8.1f} ms   ours {b * 1e3:8.1f} ms   {a / b:.2f}x")
    for name in ("F.softplus", "ours"):
        ratio = median["IWAE K=40", name] / (40 * median["ELBO pass", name])
        print(f"  IWAE / (40 x ELBO) with {name}: {ratio:.2f}")


if __name__ == "__main__":
    main()
