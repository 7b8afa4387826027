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
same number of steps on the same fresh sequences of T = 40, then scored on fixed test sets of
each length T: ELBO, the sequence-level IWAE bound and the particle filter's SMC bound with K
samples, and the exact value, in nats per sequence. Where SMC is tighter than IWAE, and how
the gap grows with T, is the SMC-IWAE column.

    python bench/bench_lgssm.py      # 1500 steps, batch 32, K in 4 16 64, T in 40 160 640
    python bench/bench_lgssm.py --steps 300 --ks 16 --lengths 40 160   # a quick look
"""

from __future__ import annotations

import argparse
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
def score(model: VRNN, x: torch.Tensor, k: int, chunk: int) -> dict[str, float]:
    """Mean ELBO, IWAE(K) and SMC(K) per sequence over x (in chunks of sequences), and SMC's
    resampling events per sequence."""
    model.eval()
    torch.manual_seed(0)  # the same z draws for every model
    elbos, iwaes, smcs, resampled = [], [], [], []
    for xb in x.float().split(chunk):
        elbos.append(estimators.elbo(model, xb).per_sequence)
        if not model.latent:  # no latent variable: the ELBO is the model's exact likelihood
            iwaes.append(elbos[-1])
            smcs.append(elbos[-1])
            resampled.append(torch.zeros_like(elbos[-1]))
            continue
        iwaes.append(estimators.iwae(model, xb, k=k).per_sequence)
        smc = estimators.smc(model, xb, k=k)
        smcs.append(smc.per_sequence)
        resampled.append(smc.n_resampled.float())

    def mean(values):
        return torch.cat(values).double().mean().item()

    return dict(elbo=mean(elbos), iwae=mean(iwaes), smc=mean(smcs), resampled=mean(resampled))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1500, help="Adam steps per model")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=40, help="training sequence length")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--ks", type=int, nargs="+", default=[4, 16, 64], help="IWAE/SMC K")
    parser.add_argument(
        "--lengths", type=int, nargs="+", default=[40, 160, 640], help="test sequence lengths"
    )
    parser.add_argument("--test", type=int, default=500, help="test sequences per length")
    parser.add_argument("--chunk", type=int, default=100, help="test sequences per batch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    # one thread: these small per-step ops ran 10-25x slower on two threads of a busy CPU
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    lgssm = make_lgssm(seed=args.seed)
    tests, exact, diag, std_err = {}, {}, {}, {}
    for steps in args.lengths:
        gen = torch.Generator().manual_seed(args.seed + 100 + steps)
        tests[steps] = test = lgssm.sample(args.test, steps, gen)
        # the Kalman filter's exact value (tests/test_lgssm.py: equal to the joint Gaussian's,
        # which would need a (T * 6)^2 covariance at T = 640)
        truth = lgssm.kalman_log_likelihood(test)
        exact[steps], std_err[steps] = truth.mean().item(), truth.std().item() / args.test**0.5
        diag[steps] = lgssm.kalman_log_likelihood(test, diagonal=True).mean().item()

    rows = []
    for variant in args.variants:
        start = time.perf_counter()
        model = train(variant, lgssm, args.steps, args.batch, args.seq_len, args.lr, args.seed)
        train_s = time.perf_counter() - start
        print(f"{variant}: trained in {train_s:.0f} s", flush=True)
        for steps in args.lengths:
            for k in args.ks if model.latent else args.ks[:1]:
                start = time.perf_counter()
                scores = score(model, tests[steps], k, args.chunk)
                rows.append((variant, steps, k, scores, train_s, time.perf_counter() - start))

    widths = " ".join(f"{k}={v}" for k, v in MODEL.items())
    print()
    print(
        f"LGSSM: latent 4 (rotation 0.15/0.35 rad, decay 0.95), x dim {lgssm.x_dim}, "
        f"obs std 0.3, seed {args.seed}"
    )
    print(
        f"  training: {args.steps} Adam steps (lr {args.lr}, grad-norm clip 10) of {args.batch} "
        f"fresh sequences of T={args.seq_len} each, the same stream for every model"
    )
    print(f"  models: {widths} (z_dim unused by rnn_gauss); {args.threads} torch thread(s)")
    print(
        f"  test: {args.test} sequences per length; nats per sequence; SMC resamples "
        "(systematic) when the ESS < K/2"
    )
    for steps in args.lengths:
        print(
            f"  T={steps}: exact log-likelihood (Kalman) {exact[steps]:.2f} (std error of the "
            f"mean {std_err[steps]:.2f}); best diagonal-Gaussian predictive {diag[steps]:.2f}"
        )
    print()
    header = (
        f"{'model':<13} {'T':>4} {'K':>3} {'ELBO':>9} {'IWAE':>9} {'SMC':>9} {'exact':>9} "
        f"{'ex-IWAE':>8} {'ex-SMC':>8} {'SMC-IWAE':>8} {'resampl':>7} {'train s':>7} "
        f"{'score s':>7}"
    )
    print(header)
    print("-" * len(header))
    for variant, steps, k, s, train_s, score_s in rows:
        truth = exact[steps]
        print(
            f"{variant:<13} {steps:>4} {k:>3} {s['elbo']:>9.2f} {s['iwae']:>9.2f} "
            f"{s['smc']:>9.2f} {truth:>9.2f} {truth - s['iwae']:>8.2f} {truth - s['smc']:>8.2f} "
            f"{s['smc'] - s['iwae']:>8.2f} {s['resampled']:>7.1f} {train_s:>7.0f} {score_s:>7.1f}"
        )
    print("rnn_gauss: ELBO = IWAE = SMC = the model's exact log-likelihood (no latent variable);")
    print("resampl: SMC's resampling events per sequence")


if __name__ == "__main__":
    main()
