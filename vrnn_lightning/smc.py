"""Sequential Monte Carlo: a particle filter over any model scored one step at a time.

K particles for each of B sequences run as one batch of K * B rows (row k * B + b, the layout
of ``VRNN.forward``'s samples). At each step every particle's log-weight grows by its step's
log-weight increment (for the VRNN: log p(x_t | z_<=t, x_<t) + log p(z_t | ...) -
log q(z_t | ...)). When a sequence's effective sample size (sum w)^2 / sum w^2 falls below
``ess_threshold * K``, its running estimate gains log mean_k w_k, its particles are resampled
(systematic or multinomial; one gather of the state rows for the whole batch) and their
weights reset to equal. At the end the estimate gains log mean_k w_k of what is left.

exp(estimate) is an unbiased estimate of p(x) (Del Moral 2004), so the estimate is a lower
bound of log p(x) in expectation, typically tighter than IWAE(K) on long sequences where the
importance weights of whole sequences degenerate (Maddison et al. 2017, "Filtering Variational
Objectives"; Naesseth et al. 2018; Le et al. 2018). With resampling off (``ess_threshold`` 0)
it is IWAE(K); with K = 1 it is the single-sample log-weight sum.

Masks: a padded step adds nothing to a sequence's weights and never resamples; a sequence
does not resample at its last valid step (nothing follows for new particles to explain), so
its estimate and its resampling count do not depend on the padding after it.

Gradients flow through the weights and, along the chosen ancestors, through the states; the
ancestor draws themselves are treated as constants (the resampling's score-function terms are
dropped, as FIVO trains).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

RESAMPLING = ("systematic", "multinomial")

# step(t, state) -> (log-weight increment of step t (K * B,), the state after step t)
Step = Callable[[int, tuple[torch.Tensor, ...]], tuple[torch.Tensor, tuple[torch.Tensor, ...]]]


@dataclass
class FilterResult:
    log_marginal: torch.Tensor  # (B,) the estimate of log p(x) of each sequence
    n_resampled: torch.Tensor  # (B,) how many steps of each sequence resampled


def particle_filter(
    step: Step,
    state: tuple[torch.Tensor, ...],
    mask: torch.Tensor,
    n_particles: int,
    resampling: str = "systematic",
    ess_threshold: float = 0.5,
    generator: torch.Generator | None = None,
) -> FilterResult:
    """Run ``step`` over the T steps of ``mask`` (B, T) for K = ``n_particles`` particles
    starting from ``state`` (a tuple of (K * B, ...) tensors). ``generator`` draws the
    resampling's uniforms (default: torch's global generator)."""
    if resampling not in RESAMPLING:
        raise ValueError(f"resampling: '{resampling}' is not one of {', '.join(RESAMPLING)}")
    if not 0 <= ess_threshold <= 1:
        raise ValueError(f"ess_threshold: {ess_threshold}; it is a fraction of K in [0, 1]")
    n_seq, steps = mask.shape
    if steps == 0:
        raise ValueError("particle_filter: no steps to filter (mask has T = 0)")
    k, device = n_particles, mask.device
    log_k = math.log(k)
    log_w = log_marginal = None  # made at the first step, in float32 or the model's float64
    n_resampled = torch.zeros(n_seq, dtype=torch.long, device=device)
    keep = torch.arange(k, device=device).unsqueeze(1).expand(k, n_seq)
    columns = torch.arange(n_seq, device=device)
    for t in range(steps):
        increment, state = step(t, state)
        increment = increment.view(k, n_seq).to(torch.promote_types(increment.dtype, torch.float32))
        if log_w is None:
            log_w, log_marginal = increment.new_zeros(k, n_seq), increment.new_zeros(n_seq)
        valid = mask[:, t]
        log_w = log_w + torch.where(valid, increment, 0.0)
        if t == steps - 1 or ess_threshold == 0:
            continue
        # the decision and the ancestors depend on the weights' values only (no gradient)
        w = log_w.detach()
        log_ess = -torch.logsumexp(2 * torch.log_softmax(w, 0), 0)  # ESS of normalised weights
        # (a relative 1e-5 below the threshold: equal weights' ESS is K up to rounding)
        fire = valid & mask[:, t + 1] & (log_ess < math.log(ess_threshold * k) - 1e-5)
        ancestors = torch.where(fire, _ANCESTORS[resampling](w, generator), keep)
        state = tuple(s[(ancestors * n_seq + columns).flatten()] for s in state)
        log_marginal = log_marginal + torch.where(fire, torch.logsumexp(log_w, 0) - log_k, 0.0)
        log_w = torch.where(fire, 0.0, log_w)
        n_resampled = n_resampled + fire
    log_marginal = log_marginal + torch.logsumexp(log_w, 0) - log_k
    return FilterResult(log_marginal, n_resampled)


def systematic(log_w: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Ancestors (K, B) of each column's K particles: one uniform per sequence, K evenly spaced
    points through the weights' cumulative sum (lower variance than multinomial)."""
    k, n_seq = log_w.shape
    cdf = torch.softmax(log_w, 0).t().cumsum(-1)  # (B, K)
    cdf[:, -1] = 1.0  # rounding must not leave a point beyond the last particle
    u = torch.rand(n_seq, 1, device=log_w.device, generator=generator)
    points = (torch.arange(k, device=log_w.device) + u) / k
    return torch.searchsorted(cdf, points).clamp(max=k - 1).t()


def multinomial(log_w: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Ancestors (K, B): K independent draws from each column's normalised weights."""
    k = log_w.shape[0]
    probs = torch.softmax(log_w, 0).t()
    return torch.multinomial(probs, k, replacement=True, generator=generator).t()


_ANCESTORS = {"systematic": systematic, "multinomial": multinomial}
