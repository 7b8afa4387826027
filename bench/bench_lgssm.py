"""Model quality against a known truth: a linear-Gaussian state-space model (LGSSM).

    z_1 ~ N(0, P_1),  z_t = A z_{t-1} + w_t,  w_t ~ N(0, Q)
    x_t = C z_t + v_t,  v_t ~ N(0, R)

with a slowly rotating, decaying A (two 2-d rotation blocks, latent dim 4), observation dim 6,
fixed seed. The exact log-likelihood of each sequence is the log-density of the joint Gaussian
of all T * d observations (covariance built from the model, torch's MultivariateNormal); a
Kalman filter gives the same number (tests/test_lgssm.py checks it) and also the best any
diagonal-Gaussian predictive p(x_t | x_<t) can do: what rnn_gauss's output can at most
reach, since the true predictive covariance C P C^T + R is full.

rnn_gauss, vrnn_gauss and vrnn_i_gauss (the same small widths) are trained with Adam for the
same number of steps on the same fresh sequences, then scored on one fixed test set: ELBO,
the sequence-level IWAE bound with K samples and the exact value, in nats per sequence.

    python bench/bench_lgssm.py                      # 1500 steps, batch 32, K=64
    python bench/bench_lgssm.py --steps 300 --k 40   # a quick look
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from vrnn_lightning import estimators  # noqa: E402
from vrnn_lightning.lgssm import MODEL, make_lgssm, train  # noqa: E402
from vrnn_lightning.model import VRNN  # noqa: E402

VARIANTS = ("rnn_gauss", "vrnn_i_gauss", "vrnn_gauss")


@torch.no_grad()
def score(model: VRNN, x: torch.Tensor, k: int, chunk: int = 100) -> tuple[float, float]:
    """(mean ELBO, mean IWAE(K)) per sequence over x, in chunks of sequences."""
    model.eval()
    torch.manual_seed(0)  # the same z draws for every model
    elbos, iwaes = [], []
    for xb in x.float().split(chunk):
        elbos.append(estimators.elbo(model, xb).per_sequence)
        if model.latent:
            iwaes.append(estimators.iwae(model, xb, k=k).per_sequence)
        else:  # no latent variable: the ELBO is the model's exact log-likelihood
            iwaes.append(elbos[-1])
    return torch.cat(elbos).double().mean().item(), torch.cat(iwaes).double().mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1500, help="Adam steps per model")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=40)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--k", type=int, default=64, help="IWAE samples")
    parser.add_argument("--test", type=int, default=500, help="test sequences")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    # one thread: these small per-step ops ran 10-25x slower on two threads of a busy CPU
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    lgssm = make_lgssm(seed=args.seed)
    test = lgssm.sample(args.test, args.seq_len, torch.Generator().manual_seed(args.seed + 100))
    exact = lgssm.exact_log_likelihood(test).mean().item()
    diag = lgssm.kalman_log_likelihood(test, diagonal=True).mean().item()
    std_err = lgssm.exact_log_likelihood(test).std().item() / math.sqrt(args.test)

    rows = []
    for variant in args.variants:
        start = time.perf_counter()
        model = train(variant, lgssm, args.steps, args.batch, args.seq_len, args.lr, args.seed)
        train_s = time.perf_counter() - start
        elbo, iwae = score(model, test, args.k)
        rows.append((variant, elbo, iwae, train_s))
        print(f"{variant}: trained in {train_s:.0f} s", flush=True)

    widths = " ".join(f"{k}={v}" for k, v in MODEL.items())
    print()
    print(
        f"LGSSM: latent 4 (rotation 0.15/0.35 rad, decay 0.95), x dim {lgssm.x_dim}, "
        f"obs std 0.3, T={args.seq_len}, seed {args.seed}"
    )
    print(
        f"  training: {args.steps} Adam steps (lr {args.lr}, grad-norm clip 10) of {args.batch} "
        f"fresh sequences each, the same stream for every model"
    )
    print(f"  models: {widths} (z_dim unused by rnn_gauss); {args.threads} torch thread(s)")
    print(
        f"  test: {args.test} sequences; IWAE K={args.k}; nats per sequence "
        f"(std error of the exact mean: {std_err:.2f})"
    )
    print(f"  exact log-likelihood (joint Gaussian): {exact:.2f}")
    print(f"  best diagonal-Gaussian predictive (Kalman, diag cov): {diag:.2f}")
    print()
    header = (
        f"{'model':<13} {'ELBO':>9} {'IWAE':>9} {'exact':>9} {'exact-ELBO':>11} "
        f"{'exact-IWAE':>11} {'train s':>8}"
    )
    print(header)
    print("-" * len(header))
    for variant, elbo, iwae, train_s in rows:
        print(
            f"{variant:<13} {elbo:>9.2f} {iwae:>9.2f} {exact:>9.2f} {exact - elbo:>11.2f} "
            f"{exact - iwae:>11.2f} {train_s:>8.0f}"
        )
    print("rnn_gauss: ELBO = IWAE = the model's exact log-likelihood (no latent variable)")


if __name__ == "__main__":
    main()
