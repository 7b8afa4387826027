"""Log-likelihood estimators, per sequence (sum over its frames) and per frame, in nats.

- ``elbo``: the variational lower bound with one reparameterised sample (analytic KL). For the
  rnn_* variants it is the exact log-likelihood.
- ``iwae``: the sequence-level importance-weighted bound log (1/K) sum_k prod_t w_t^k, a lower
  bound that tightens as K grows; the K samples run as one batch.
- ``smc``: the particle filter's estimate with K particles (vrnn_lightning/smc.py), resampling
  when the effective sample size falls below a fraction of K: a lower bound in expectation,
  typically tighter than IWAE(K) on long sequences.
- ``paper_estimate``: what the paper's "≈" column computed (its section 6 and the original
  test script): a log-mean-exp of the weights at each step, summed over time, with no
  resampling. It is not a bound and not a consistent estimator; it is here to compare like
  with like.

``ESTIMATORS`` is the one registry (name -> how to compute it and how to label it) that
vrnn-eval, its JSON, the sweep report and the table labels iterate: a new estimator is one
entry here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import torch

from .model import VRNN
from .smc import particle_filter


@dataclass
class Estimate:
    per_sequence: torch.Tensor  # (B,) nats per sequence
    n_frames: torch.Tensor  # (B,) valid frames in each sequence
    n_resampled: torch.Tensor | None = None  # (B,) steps that resampled (SMC only)

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
    model: VRNN,
    x: torch.Tensor,
    mask: torch.Tensor | None = None,
    k: int = 40,
    generator: torch.Generator | None = None,
) -> tuple[Estimate, Estimate]:
    """(IWAE(K), the paper's per-step estimate) from one shared pass of K samples."""
    mask, n_frames = _frames(x, mask)
    log_w = model(x, mask, n_samples=k, generator=generator).log_weight  # (K * B, T)
    log_w = log_w.view(k, *x.shape[:2])  # (K, B, T)
    # sequence level: one weight per whole sequence
    seq = torch.logsumexp(log_w.sum(-1), dim=0) - math.log(k)
    # per step, no resampling, as the paper's test script
    per_step = torch.logsumexp(log_w, dim=0) - math.log(k)
    paper = torch.where(mask, per_step, 0.0).sum(-1)
    return Estimate(seq, n_frames), Estimate(paper, n_frames)


def iwae(
    model: VRNN,
    x: torch.Tensor,
    mask: torch.Tensor | None = None,
    k: int = 40,
    generator: torch.Generator | None = None,
) -> Estimate:
    return importance_estimates(model, x, mask, k, generator)[0]


def paper_per_step_estimate(
    model: VRNN, x: torch.Tensor, mask: torch.Tensor | None = None, k: int = 40
) -> Estimate:
    return importance_estimates(model, x, mask, k)[1]


def smc(
    model: VRNN,
    x: torch.Tensor,
    mask: torch.Tensor | None = None,
    k: int = 40,
    resampling: str = "systematic",
    ess_threshold: float = 0.5,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Estimate:
    """SMC(K): the particle filter over ``model.step`` with K particles per sequence, run as
    one batch of K * B rows; resampling (``resampling``, drawn from ``generator``) when the
    effective sample size falls below ``ess_threshold * K`` (0: never, which is IWAE(K)).
    ``noise`` (K * B, T, z_dim) fixes the proposal's noise as in ``VRNN.forward``. Gradients
    flow as FIVO trains (vrnn_lightning/smc.py)."""
    mask, n_frames = _frames(x, mask)
    x = torch.where(mask.unsqueeze(-1), x, torch.zeros((), dtype=x.dtype, device=x.device))
    phi_x = model.phi_x(x).repeat(k, 1, 1)  # x-only work for all steps at once, before the loop
    x = x.repeat(k, 1, 1)  # rows k * B + b

    def step(t, state):
        noise_t = None if noise is None else noise[:, t]
        terms, state = model.step(x[:, t], state, noise_t, generator, phi_x_t=phi_x[:, t])
        return terms.log_weight, state

    state = model.initial_state(x.shape[0], x.device)
    result = particle_filter(step, state, mask, k, resampling, ess_threshold, generator)
    return Estimate(result.log_marginal, n_frames, result.n_resampled)


# ---- the registry ----------------------------------------------------------------------


@dataclass
class Scoring:
    """One batch to score and the settings of every estimator; a pass that two estimators
    share (IWAE and the paper's estimate: the same K samples) runs once."""

    model: VRNN
    x: torch.Tensor
    mask: torch.Tensor
    k: int = 40
    resampling: str = "systematic"
    ess_threshold: float = 0.5
    generator: torch.Generator | None = field(default=None, repr=False)

    @cached_property
    def importance(self) -> tuple[Estimate, Estimate]:
        return importance_estimates(self.model, self.x, self.mask, self.k, self.generator)


@dataclass(frozen=True)
class Estimator:
    name: str  # the key in vrnn-eval's JSON and the report's CSV columns
    title: str  # how tables name it; "{k}" is the number of samples
    symbol: str  # ">=": a lower bound (in expectation for SMC); "≈": an estimate, not a bound
    compute: Callable[[Scoring], Estimate]
    in_table: bool = True  # shown in the sweep report's Table 1 cells (all are in its CSV)

    def label(self, k: int) -> str:
        """E.g. "IWAE(40) >=": the name, K, and what the number is to log p(x)."""
        return f"{self.title.format(k=k)} {self.symbol}"


ESTIMATORS: dict[str, Estimator] = {
    e.name: e
    for e in (
        Estimator("elbo", "ELBO", ">=", lambda s: elbo(s.model, s.x, s.mask)),
        Estimator("iwae", "IWAE({k})", ">=", lambda s: s.importance[0]),
        Estimator(
            "smc",
            "SMC({k})",
            ">=",
            lambda s: smc(
                s.model, s.x, s.mask, s.k, s.resampling, s.ess_threshold, generator=s.generator
            ),
        ),
        Estimator("paper_estimate", "paper per-step({k})", "≈", lambda s: s.importance[1], False),
    )
}


def estimate_all(scoring: Scoring) -> dict[str, Estimate]:
    """Every registered estimator of one batch. Without a latent variable (rnn_*) they all
    equal the ELBO, the exact log-likelihood: it is computed once."""
    if not scoring.model.latent:
        exact = ESTIMATORS["elbo"].compute(scoring)
        return dict.fromkeys(ESTIMATORS, exact)
    return {name: e.compute(scoring) for name, e in ESTIMATORS.items()}
