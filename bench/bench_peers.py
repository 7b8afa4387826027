"""Side by side with the most-forked public PyTorch VRNN, at its own sizes.

The peer is emited/VariationalRecurrentNeuralNetwork (github.com/emited/
VariationalRecurrentNeuralNetwork, model.py). Its code is not vendored here: ``PeerVRNN``
below is an equivalent of its architecture written from its published description, with
the Gaussian output the comparison asks for (the original models binarised MNIST with a
Bernoulli). Every width is h_dim: phi_x two ReLU layers, phi_z one, the encoder two on
[phi_x(x_t), h_{t-1}], the prior one on h_{t-1}, the decoder two on [phi_z(z_t), h_{t-1}],
each with a linear mean and a softplus standard deviation; a one-layer GRU on [phi_x(x_t),
phi_z(z_t)]. Every network runs inside the per-step loop, the GRU called on a one-step
sequence each step, as the original does.

Ours is ``vrnn_gauss`` at matching widths (every MLP width h_dim, two layers each: our phi_z
and prior have one layer more than the peer's, and our LSTM more gates than its GRU, so ours
computes more FLOPs; the FLOP counts are printed). One training step each (forward, backward,
fused Adam), interleaved in one process; FLOPs by torch.utils.flop_counter.

    python bench/bench_peers.py [--repeats 5] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Normal, kl_divergence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from bench.bench_training import DEVICE, _time, count_flops  # noqa: E402
from vrnn_lightning.allocator import reuse_freed_memory  # noqa: E402
from vrnn_lightning.model import VRNN  # noqa: E402

# the peer's sizes the issue names: (h_dim, z_dim, batch, steps); frames of 200 samples
SIZES = {"h256": (256, 32, 32, 40), "h1024": (1024, 200, 64, 40)}
X_DIM = 200


def _relu_layers(sizes: list[int]) -> nn.Sequential:
    layers = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(n_in, n_out), nn.ReLU()]
    return nn.Sequential(*layers)


class PeerVRNN(nn.Module):
    """The public port's architecture (see the module docstring), with a Gaussian output."""

    def __init__(self, x_dim: int, h_dim: int, z_dim: int):
        super().__init__()
        self.h_dim = h_dim
        self.phi_x = _relu_layers([x_dim, h_dim, h_dim])
        self.phi_z = _relu_layers([z_dim, h_dim])
        self.enc = _relu_layers([2 * h_dim, h_dim, h_dim])
        self.enc_mean, self.enc_std = nn.Linear(h_dim, z_dim), nn.Linear(h_dim, z_dim)
        self.prior = _relu_layers([h_dim, h_dim])
        self.prior_mean, self.prior_std = nn.Linear(h_dim, z_dim), nn.Linear(h_dim, z_dim)
        self.dec = _relu_layers([2 * h_dim, h_dim, h_dim])
        self.dec_mean, self.dec_std = nn.Linear(h_dim, x_dim), nn.Linear(h_dim, x_dim)
        self.rnn = nn.GRU(2 * h_dim, h_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Minus the ELBO of x (B, T, x_dim), summed over steps, averaged over sequences."""
        batch, steps, _ = x.shape
        h = x.new_zeros(1, batch, self.h_dim)
        loss = x.new_zeros(())
        for t in range(steps):
            fx = self.phi_x(x[:, t])
            enc = self.enc(torch.cat([fx, h[-1]], dim=1))
            q = Normal(self.enc_mean(enc), F.softplus(self.enc_std(enc)))
            prior = self.prior(h[-1])
            p = Normal(self.prior_mean(prior), F.softplus(self.prior_std(prior)))
            z = q.rsample()
            fz = self.phi_z(z)
            dec = self.dec(torch.cat([fz, h[-1]], dim=1))
            p_x = Normal(self.dec_mean(dec), F.softplus(self.dec_std(dec)))
            _, h = self.rnn(torch.cat([fx, fz], dim=1).unsqueeze(0), h)
            loss = loss + kl_divergence(q, p).sum() - p_x.log_prob(x[:, t]).sum()
        return loss / batch


def ours(h_dim: int, z_dim: int) -> VRNN:
    widths = dict(phi_x_dim=h_dim, phi_z_dim=h_dim, enc_dim=h_dim, prior_dim=h_dim, dec_dim=h_dim)
    return VRNN("vrnn_gauss", x_dim=X_DIM, h_dim=h_dim, z_dim=z_dim, mlp_layers=2, **widths)


def train_step(model: nn.Module, x: torch.Tensor):
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, fused=True)

    def step():
        if isinstance(model, VRNN):
            terms = model(x)
            loss = -(terms.log_px - terms.kl).sum(1).mean()
        else:
            loss = model(x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def bench_size(name: str, repeats: int) -> dict:
    h_dim, z_dim, batch, steps = SIZES[name]
    torch.manual_seed(0)
    x = torch.randn(batch, steps, X_DIM, device=DEVICE)
    fns = {
        "peer": train_step(PeerVRNN(X_DIM, h_dim, z_dim).to(DEVICE), x),
        "ours": train_step(ours(h_dim, z_dim).to(DEVICE), x),
    }
    flops = {k: count_flops(fn) for k, fn in fns.items()}
    times = {k: [] for k in fns}
    for _ in range(repeats):  # interleaved: load changes hit both alike
        for k, fn in fns.items():
            times[k].append(_time(fn))
    med = {k: statistics.median(v) for k, v in times.items()}
    return dict(name=name, seconds=med, flops=flops)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    reuse_freed_memory()  # the allocator as vrnn-fit sets it (bench/bench_allocator.py)
    print(f"torch {torch.__version__} on {DEVICE}, {args.threads} threads; one training step")
    print("peer: emited/VariationalRecurrentNeuralNetwork's architecture (GRU, Gaussian output)")
    print(f"ours: vrnn_gauss at matching widths; frames of {X_DIM}\n")
    header = (
        f"{'size':22} {'peer s':>8} {'ours s':>8} {'speed-up':>9} "
        f"{'peer GF/s':>10} {'ours GF/s':>10} {'rate ratio':>10} {'FLOP ratio':>10}"
    )
    print(header)
    print("-" * len(header))
    for name in args.sizes:
        r = bench_size(name, args.repeats)
        h_dim, z_dim, batch, steps = SIZES[name]
        label = f"h {h_dim} z {z_dim} {batch}x{steps}"
        sec, flops = r["seconds"], r["flops"]
        rate = {k: flops[k] / sec[k] / 1e9 for k in sec}
        print(
            f"{label:22} {sec['peer']:8.3f} {sec['ours']:8.3f} {sec['peer'] / sec['ours']:8.2f}x "
            f"{rate['peer']:10.1f} {rate['ours']:10.1f} {rate['ours'] / rate['peer']:9.2f}x "
            f"{flops['ours'] / flops['peer']:9.2f}x"
        )
    print("\nspeed-up > 1: ours takes less time per step; FLOP ratio: ours / peer")


if __name__ == "__main__":
    main()
