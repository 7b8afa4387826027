"""Log-likelihood estimators, per sequence (sum over its frames) and per frame, in nats.

- ``elbo``: the variational lower bound with one reparameterised sample (analytic KL). For the
  rnn_* variants it is the exact log-likelihood.
- ``iwae``: the sequence-level importance-weighted bound log (1/K) sum_k prod_t w_t^k, a lower
  bound that tightens as K grows; the K samples run as one batch.
- ``paper_per_step_estimate``: what the paper's "~" column computed (spec section 6): a
  log-mean-exp of the weights at each step, summed over time, with no resampling. It is not
  a bound and not a consistent estimator; it is here to compare like with like.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .model import VRNN


@dataclass
class Estimate:
    per_sequence: torch.Tensor  # (B,) nats per sequence
    n_frames: torch.Tensor  # (B,) valid frames in each sequence

    @property
    def per_frame(self) -> torch.Tensor:
        return self.per_sequence / self.n_frames.clamp(min=1)


def _frames(x: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    if mask is None:
        mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
    return mask, mask.sum(1)


def elbo(model: VRNN, x: torch.Tensor, mask: torch.Tensor | None = None) -> Estimate:
    mask, n_frames = _frames(x, mask)
    terms = model(x, mask)
    return Estimate((terms.log_px - terms.kl).sum(1), n_frames)


def importance_estimates(
    model: VRNN, x: torch.Tensor, mask: torch.Tensor | None = None, k: int = 40
) -> tuple[Estimate, Estimate]:
    """(IWAE(K), the paper's per-step estimate) from one shared pass of K samples."""
    mask, n_frames = _frames(x, mask)
    log_w = model(x, mask, n_samples=k).log_weight.view(k, *x.shape[:2])  # (K, B, T)
    # sequence level: one weight per whole sequence
    seq = torch.logsumexp(log_w.sum(-1), dim=0) - math.log(k)
    # per step, no resampling, as the paper's test script
    per_step = torch.logsumexp(log_w, dim=0) - math.log(k)
    paper = torch.where(mask, per_step, 0.0).sum(-1)
    return Estimate(seq, n_frames), Estimate(paper, n_frames)


def iwae(model: VRNN, x: torch.Tensor, mask: torch.Tensor | None = None, k: int = 40) -> Estimate:
    return importance_estimates(model, x, mask, k)[0]


def paper_per_step_estimate(
    model: VRNN, x: torch.Tensor, mask: torch.Tensor | None = None, k: int = 40
) -> Estimate:
    return importance_estimates(model, x, mask, k)[1]
