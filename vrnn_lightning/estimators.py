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
from dataclasses import dataclass, field, replace
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


def elbo(
    model: VRNN,
    x: torch.Tensor,
    mask: torch.Tensor | None = None,
    noise: torch.Tensor | None = None,
) -> Estimate:
    """``noise`` (B, T, z_dim) fixes the sample, as in ``VRNN.forward``."""
    mask, n_frames = _frames(x, mask)
    terms = model(x, mask, noise=noise)
    return Estimate((terms.log_px - terms.kl).sum(1), n_frames)


def importance_estimates(
    model: VRNN,
    x: torch.Tensor,
    mask: torch.Tensor | None = None,
    k: int = 40,
    generator: torch.Generator | None = None,
    noise: torch.Tensor | None = None,
    max_rows: int | None = None,
) -> tuple[Estimate, Estimate]:
    """(IWAE(K), the paper's per-step estimate) from one shared pass of K samples: K * B
    rows, or, when ``max_rows`` is less, passes of as many samples as fit (both estimates are
    log-mean-exps over the samples, which add up exactly across groups of them). ``noise``
    (K * B, T, z_dim) fixes the samples, as in ``VRNN.forward``."""
    mask, n_frames = _frames(x, mask)
    n_seq, steps = x.shape[:2]
    group = k if max_rows is None else max(1, min(k, max_rows // n_seq))
    if noise is not None:
        noise = noise.view(k, n_seq, steps, -1)
    seq = per_step = None  # log-sum-exp over the samples so far: (B,) and (B, T)
    for first in range(0, k, group):
        n = min(group, k - first)
        part = None if noise is None else noise[first : first + n].flatten(0, 1)
        log_w = model(x, mask, n_samples=n, noise=part, generator=generator).log_weight
        log_w = log_w.view(n, n_seq, steps)  # (n, B, T)
        # sequence level: one weight per whole sequence
        seq = _log_add(seq, torch.logsumexp(log_w.sum(-1), dim=0))
        # per step, no resampling, as the paper's test script
        per_step = _log_add(per_step, torch.logsumexp(log_w, dim=0))
    seq, per_step = seq - math.log(k), per_step - math.log(k)
    paper = torch.where(mask, per_step, 0.0).sum(-1)
    return Estimate(seq, n_frames), Estimate(paper, n_frames)


def _log_add(total: torch.Tensor | None, term: torch.Tensor) -> torch.Tensor:
    return term if total is None else torch.logaddexp(total, term)


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
    # x-only work for all steps at once, before the loop (SRNN: d_t and its smoothing a_t)
    phi_x = model.step_inputs(x, mask).repeat(k, 1, 1)
    x = x.repeat(k, 1, 1)  # rows k * B + b

    def step(t, state):
        noise_t = None if noise is None else noise[:, t]
        terms, state = model.step(x[:, t], state, noise_t, generator, phi_x_t=phi_x[:, t])
        return terms.log_weight, state

    state = model.initial_state(x.shape[0], x.device)
    result = particle_filter(step, state, mask, k, resampling, ess_threshold, generator)
    return Estimate(result.log_marginal, n_frames, result.n_resampled)


# ---- memory ----------------------------------------------------------------------------
# The tensors counted in step_bytes come to 0.86-1.7 times the resident memory per (row, step)
# that bench/bench_eval_memory.py measures at the conf/*.yaml sizes and bench_lgssm's (with
# glibc's mmap threshold fixed, so that memory follows the tensors): with this margin the
# figure is above every measurement (1.08-2.2 times it). The margin also covers allocators
# that hold more than the tensors: glibc's default heap measured up to 1.8 times them at TIMIT's
# sizes in one run of three, CUDA's caching allocator rounds blocks up.
_MARGIN = 1.25


@dataclass(frozen=True)
class StepBytes:
    """What a scoring pass (``VRNN.forward`` of K samples without gradients: IWAE's and the
    ELBO's) holds for each step: bytes per sequence, and per row (sample of a sequence)."""

    per_sequence: int
    per_row: int


def step_bytes(model: VRNN) -> StepBytes:
    """An upper bound of what bench/bench_eval_memory.py measures. Per sequence: the x-only
    pre-activations of the LSTM gates and of the encoder's first layer, computed for all steps
    before the loop (4 h_dim + enc_dim; its K copies are made a step at a time). Per row: the
    loop's h_{t-1}, posterior, z and phi_z of every step, in lists and then stacked; the
    decoder's input (phi_z_dim + h_dim); the prior's and the densities' terms. The particle
    filter holds far less per (row, step): x and phi_x(x) of each row (its step's work is per
    row, not per step)."""
    h, z = model.h_dim, model.z_dim
    x_dim, phi_x = model.x_dim, model.phi_x[0].out_features
    if not model.latent:  # nn.LSTM's gates, its output, h_{t-1}, phi_x(x) and x
        return StepBytes(0, int(4 * (6 * h + phi_x + x_dim) * _MARGIN))
    if hasattr(model, "a_rnn"):  # SRNN: d_t and a_t made once per sequence, copied per row
        return _srnn_step_bytes(model, h, z, x_dim, phi_x)
    phi_z, enc = model.phi_z[0].out_features, model.encoder[0].out_features
    prior = model.prior_net[0].out_features if model.learned_prior else 0
    per_row = (
        2 * (h + 3 * z + phi_z)  # the loop's lists and their stacks
        + (phi_z + h)  # the decoder's input
        + prior  # the prior network's output
        + 8 * z  # the prior, the noise, KL and log-densities
        + 5 * x_dim  # x, its copies and the output density's terms
    )
    per_sequence = 4 * h + enc + phi_x + x_dim
    return StepBytes(int(4 * per_sequence * _MARGIN), int(4 * per_row * _MARGIN))


CPU_MEMORY_GB = 4.0  # eval.memory_gb=auto on a CPU: fits a 16 GB machine beside the model
GPU_FREE_FRACTION = 0.6  # eval.memory_gb=auto on a CUDA GPU: of the memory free at the time


def memory_budget_gb(setting, device) -> float | None:
    """eval.memory_gb in GB: a number or null (no bound) as given; "auto": 4 on a CPU, and on
    a CUDA device 60% of its memory free when scoring starts (the allocator's cache and the
    activations' spread beyond the estimate take the rest)."""
    if setting != "auto":
        return None if setting is None else float(setting)
    device = torch.device(device)
    if device.type != "cuda":
        return CPU_MEMORY_GB
    free, _total = torch.cuda.mem_get_info(device)
    return max(0.5, GPU_FREE_FRACTION * free / 2**30)


def _srnn_step_bytes(model, h: int, z: int, x_dim: int, phi_x: int) -> StepBytes:
    """Per sequence: phi_x(x) and its shift, d, the backward LSTM's input and output (each
    also reordered), an LSTM's gates, [d, a]. Per row: the copy of [d, a], the a- and d-parts
    of the encoder's and prior's first layers, the loop's lists and their stacks, z_t, phi_z,
    the decoder's input, the densities' terms."""
    phi_z, enc = model.phi_z[0].out_features, model.encoder[0].out_features
    prior = model.prior_net[0].out_features
    per_sequence = x_dim + 4 * phi_x + 11 * h
    per_row = 2 * h + enc + prior + 11 * z + 2 * phi_z + h + 8 * z + 5 * x_dim
    return StepBytes(int(4 * per_sequence * _MARGIN), int(4 * per_row * _MARGIN))


def rows_within(size: StepBytes, steps: int, memory_gb: float | None, k: int) -> int | None:
    """The most rows (sequences x samples) of ``steps`` steps that a scoring pass of K = ``k``
    samples may hold in ``memory_gb`` GB: as many whole sequences' K rows as fit, else as many
    samples of one sequence (at least 1). None when ``memory_gb`` is None (no bound)."""
    if memory_gb is None:
        return None
    per_step = memory_gb * 2**30 / max(1, steps)
    sequence = size.per_sequence + k * size.per_row
    if per_step >= sequence:
        return k * int(per_step // sequence)
    return max(1, int((per_step - size.per_sequence) // size.per_row))


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
    # the most rows (sequences x samples) a pass may hold at once (``rows_within``); None: all
    # of the batch's K * B. Fewer sequences then score at a time, and IWAE's samples of one
    # sequence in groups if K alone is too many; SMC's K particles of a sequence always run
    # together (resampling joins them), at a small fraction of IWAE's memory per row.
    max_rows: int | None = None
    # (K * B, T, z_dim): fixes every estimator's samples (IWAE's and SMC's rows k * B + b,
    # the ELBO's the first B), so that a split scoring draws what the whole one draws
    noise: torch.Tensor | None = field(default=None, repr=False)

    @cached_property
    def importance(self) -> tuple[Estimate, Estimate]:
        return importance_estimates(
            self.model, self.x, self.mask, self.k, self.generator, self.noise, self.max_rows
        )

    @property
    def first_noise(self) -> torch.Tensor | None:
        """The noise of the first sample of every sequence (B, T, z_dim): the ELBO's."""
        return None if self.noise is None else self.noise[: self.x.shape[0]]

    def parts(self) -> list[Scoring]:
        """This batch as consecutive groups of sequences whose K * B rows fit ``max_rows``
        (at least one sequence each); itself when it fits whole. Every sequence keeps its K
        samples together, so each is scored as in the whole batch."""
        n_seq = self.x.shape[0]
        k = self.k if self.model.latent else 1  # rnn_*: the ELBO of B rows is all it scores
        if self.max_rows is None or k * n_seq <= self.max_rows or n_seq == 1:
            return [self]
        size = max(1, self.max_rows // k)
        noise = (
            None if self.noise is None else self.noise.view(self.k, n_seq, *self.noise.shape[1:])
        )
        return [
            replace(
                self,
                x=self.x[first : first + size],
                mask=self.mask[first : first + size],
                noise=None if noise is None else noise[:, first : first + size].flatten(0, 1),
            )
            for first in range(0, n_seq, size)
        ]


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
        Estimator("elbo", "ELBO", ">=", lambda s: elbo(s.model, s.x, s.mask, s.first_noise)),
        Estimator("iwae", "IWAE({k})", ">=", lambda s: s.importance[0]),
        Estimator(
            "smc",
            "SMC({k})",
            ">=",
            lambda s: smc(
                s.model, s.x, s.mask, s.k, s.resampling, s.ess_threshold, s.noise, s.generator
            ),
        ),
        Estimator("paper_estimate", "paper per-step({k})", "≈", lambda s: s.importance[1], False),
    )
}


def estimate_all(scoring: Scoring) -> dict[str, Estimate]:
    """Every registered estimator of one batch, in parts of at most ``scoring.max_rows`` rows.
    Without a latent variable (rnn_*) they all equal the ELBO, the exact log-likelihood: it
    is computed once."""
    parts = scoring.parts()
    if len(parts) > 1:
        scored = [estimate_all(part) for part in parts]
        return {name: _joined([s[name] for s in scored]) for name in ESTIMATORS}
    if not scoring.model.latent:
        exact = ESTIMATORS["elbo"].compute(scoring)
        return dict.fromkeys(ESTIMATORS, exact)
    return {name: e.compute(scoring) for name, e in ESTIMATORS.items()}


def estimate(scoring: Scoring, name: str) -> Estimate:
    """One registered estimator of a batch, in parts of at most ``scoring.max_rows`` rows."""
    parts = scoring.parts()
    if len(parts) > 1:
        return _joined([estimate(part, name) for part in parts])
    return ESTIMATORS[name].compute(scoring)


def _joined(estimates: list[Estimate]) -> Estimate:
    """The estimates of consecutive groups of sequences as one of all of them."""
    resampled = [e.n_resampled for e in estimates]
    return Estimate(
        torch.cat([e.per_sequence for e in estimates]),
        torch.cat([e.n_frames for e in estimates]),
        None if resampled[0] is None else torch.cat(resampled),
    )
