"""A plain PyTorch VRNN, the reference of issue 24: written from the issue's description, not
from vrnn_lightning's model code (nothing of vrnn_lightning's model, networks, distributions,
training or evaluation is imported).

The recipe: whole recordings as masked sequences (random batches of 32, zero-padded to the
longest); loss = minus the ELBO summed over the batch's frames / its number of valid frames;
the gradient norm of that loss clipped at 5; Adam 1e-3; PyTorch's default initialisation, no
max-norm; scales softplus(a) + 1e-4; encoder, prior and decoder each a 2-layer ReLU MLP and a
linear layer (phi_x and phi_z 2-layer ReLU MLPs); an LSTMCell over [phi_x, phi_z] (rnn_gmm:
over phi_x, with p(x_t | x_<t) = dec(h_{t-1})); the output a diagonal Gaussian or a mixture of
K diagonal Gaussians over the whole frame.

Data: the frames are read from vrnn_lightning's prepared frame stores (FramesDataModule's
train and test stores, conf/fsdd.yaml's speaker split), only so that both implementations see
the very same frames, split and normalisation: the stores normalise with the training split's
scalar mean and std of all samples, which is the plain recipe's normalisation too.

Scoring, as vrnn-eval's: the test split's whole recordings, one z sample per sequence drawn
after ``torch.manual_seed(seed)``, ELBO = sum over frames of log p(x_t | z_<=t, x_<t) minus the
analytic KL(q || p) (rnn_*: the exact log-likelihood); "per frame" is the sum over every test
sequence / the number of test frames, "per sequence" that sum / the number of sequences.

    python bench/plain_vrnn.py --variant vrnn_gmm --seed 1 --out runs/plain/vrnn_gmm-1.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("rnn_gmm", "vrnn_gauss", "vrnn_gmm")


def mlp(n_in: int, width: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU())


def scale(a: torch.Tensor) -> torch.Tensor:
    return F.softplus(a) + 1e-4


LOG_2PI = math.log(2 * math.pi)


def gauss_logpdf(x, mu, std):
    return -0.5 * ((x - mu) / std) ** 2 - torch.log(std) - 0.5 * LOG_2PI


class PlainVRNN(nn.Module):
    def __init__(self, variant: str, x_dim=200, h_dim=256, z_dim=32, width=192, k=10):
        super().__init__()
        self.latent, self.gmm = variant.startswith("vrnn"), variant.endswith("gmm")
        self.x_dim, self.h_dim, self.z_dim, self.k = x_dim, h_dim, z_dim, k if self.gmm else 1
        self.phi_x = mlp(x_dim, width)
        if self.latent:
            self.phi_z = mlp(z_dim, width)
            self.enc = nn.Sequential(mlp(width + h_dim, width), nn.Linear(width, 2 * z_dim))
            self.prior = nn.Sequential(mlp(h_dim, width), nn.Linear(width, 2 * z_dim))
        dec_in = width + h_dim if self.latent else h_dim
        out = self.k * 2 * x_dim + (self.k if self.gmm else 0)  # means, scales, mixture logits
        self.dec = nn.Sequential(mlp(dec_in, width), nn.Linear(width, out))
        self.cell = nn.LSTMCell(2 * width if self.latent else width, h_dim)

    def log_px(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log p(x_t | ...) per (b, t) from the decoder's output layer."""
        d, k = self.x_dim, self.k
        mu, s = out[..., : k * d], scale(out[..., k * d : 2 * k * d])
        if not self.gmm:
            return gauss_logpdf(x, mu, s).sum(-1)
        shape = (*x.shape[:-1], k, d)
        comp = gauss_logpdf(x.unsqueeze(-2), mu.view(shape), s.view(shape)).sum(-1)
        return torch.logsumexp(F.log_softmax(out[..., 2 * k * d :], -1) + comp, -1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The ELBO (rnn_*: the exact log-likelihood) of each sequence, (B,): x (B, T, D),
        mask (B, T), True at real frames (padding at the end)."""
        b, t_len, _ = x.shape
        fx = self.phi_x(x)
        h = c = x.new_zeros(b, self.h_dim)
        hs, fzs, kls = [], [], []
        for t in range(t_len):
            hs.append(h)  # h_{t-1}
            inp = fx[:, t]
            if self.latent:
                q = self.enc(torch.cat([fx[:, t], h], -1))
                p = self.prior(h)
                q_mu, q_s = q[:, : self.z_dim], scale(q[:, self.z_dim :])
                p_mu, p_s = p[:, : self.z_dim], scale(p[:, self.z_dim :])
                z = q_mu + q_s * torch.randn_like(q_s)
                fz = self.phi_z(z)
                kl = torch.log(p_s / q_s) + (q_s**2 + (q_mu - p_mu) ** 2) / (2 * p_s**2) - 0.5
                fzs.append(fz)
                kls.append(kl.sum(-1))
                inp = torch.cat([fx[:, t], fz], -1)
            h, c = self.cell(inp, (h, c))
        h_prev = torch.stack(hs, 1)  # the decoder runs over all steps at once
        dec_in = torch.cat([torch.stack(fzs, 1), h_prev], -1) if self.latent else h_prev
        terms = self.log_px(self.dec(dec_in), x)
        if self.latent:
            terms = terms - torch.stack(kls, 1)
        return (terms * mask).sum(1)


def load_split(split: str, data_root: str) -> list[torch.Tensor]:
    """The normalised whole recordings of a split of conf/fsdd.yaml's speaker split."""
    sys.path.insert(0, str(ROOT))
    from vrnn_lightning.config import load_config
    from vrnn_lightning.data import FramesDataModule

    cfg = load_config(ROOT / "conf/fsdd.yaml", [f"data.root={data_root}", "data.download=null"])
    cfg.data.cache_dir = str(ROOT / cfg.data.cache_dir)  # vrnn-fit's, run from ROOT
    dm = FramesDataModule(cfg.data, seed=0)
    dm.prepare_data()
    dm.setup("fit")
    store = dm.store(split)
    return [torch.from_numpy(store.sequence(i)) for i in range(len(store))]


def pad(seqs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(s) for s in seqs])
    x = nn.utils.rnn.pad_sequence(seqs, batch_first=True)
    return x, torch.arange(x.shape[1]) < lengths[:, None]


@torch.no_grad()
def score(model: PlainVRNN, seqs: list[torch.Tensor], seed: int, batch: int = 64) -> dict:
    model.eval()
    order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i]))  # as vrnn-eval's batches
    torch.manual_seed(seed)
    total, frames = 0.0, 0
    for i in range(0, len(order), batch):
        x, mask = pad([seqs[j] for j in order[i : i + batch]])
        total += model(x, mask).double().sum().item()
        frames += int(mask.sum())
    return {"per_frame": total / frames, "per_sequence": total / len(seqs), "n_frames": frames}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", choices=VARIANTS, required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--h-dim", type=int, default=256)
    parser.add_argument("--z-dim", type=int, default=32)
    parser.add_argument("--width", type=int, default=192, help="every MLP's width")
    parser.add_argument("--components", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--clip", type=float, default=5.0)
    parser.add_argument("--data-root", default=str(ROOT.parent / "shared/data/fsdd/recordings"))
    parser.add_argument("--out", help="write the result as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(1)

    train, test = load_split("train", args.data_root), load_split("test", args.data_root)
    torch.manual_seed(args.seed)
    model = PlainVRNN(args.variant, train[0].shape[1], args.h_dim, args.z_dim, args.width,
                      args.components)  # fmt: skip
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    start, step, perm = time.perf_counter(), 0, []
    while step < args.steps:
        if len(perm) < args.batch_size:  # a new epoch: every recording once, in a new order
            perm = torch.randperm(len(train)).tolist()
        idx, perm = perm[: args.batch_size], perm[args.batch_size :]
        x, mask = pad([train[i] for i in idx])
        model.train()
        loss = -model(x, mask).sum() / mask.sum()
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        opt.step()
        step += 1
        if step % 100 == 0:
            print(f"step {step}: loss {loss.item():.3f}", flush=True)
    fit_s = time.perf_counter() - start
    result = {"variant": args.variant, "seed": args.seed, "settings": vars(args), **score(
        model, test, args.seed)}  # fmt: skip
    result.update(fit_seconds=fit_s, eval_seconds=time.perf_counter() - start - fit_s)
    print(f"{args.variant} seed {args.seed}: test ELBO per frame {result['per_frame']:.3f} "
          f"(per sequence {result['per_sequence']:.1f}, {result['n_frames']} frames; "
          f"fit {fit_s:.0f} s)")  # fmt: skip
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
