"""Output heads with dependence within a frame (``model.output=autoregressive``).

The paper's heads (distributions.py) factorise a frame given its context: every one of an
audio frame's D samples is independent of the others given h_{t-1} (and z_t). Dai et al.
(NeurIPS 2019, "Re-examination of the role of latent variables in sequence modeling") found
that most of what stochastic RNNs gain on speech comes from modelling the dependence within a
frame. These heads write the frame as a chain of conditionals,

    p(x | c) = p(x_1 | c) p(x_2 | x_1, c) ... p(x_D | x_<D, c),

c the decoder's output, each conditional a Gaussian or a K-component mixture of Gaussians
(strokes: the pen bit, then dx given the pen, then dy given the pen and dx). The product is a
normalised density, so the rnn_* variants' log-likelihood stays exact.

Every conditional's parameters are the paper's head's (a linear map of c, now one set per
dimension) plus a correction from a masked network (MADE, Germain et al. 2015) whose row d
sees only x_<d. Dai et al. run a small LSTM over the samples instead; a masked network scores
a whole frame in one pass of two matmuls over all rows, where an LSTM over the samples would
be D = 200 dependent steps inside every training step (training speed is why: the step stays
within 2x the independent head's, bench/bench_output_head.py). Sampling walks the chain one
dimension at a time, updating the masked layer's pre-activation incrementally.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import (
    Bernoulli,
    Categorical,
    Distribution,
    MixtureSameFamily,
    Normal,
    constraints,
)

from .distributions import FAST, _std
from .networks import scale_head

OUTPUT_KINDS = ("independent", "autoregressive")  # model.output
_SCALAR = torch.Size()


class MaskedLinear(nn.Linear):
    """A Linear layer whose weight is multiplied by a fixed 0/1 mask: masked weights get no
    gradient (and are zeroed by ``zero_masked_``, so that max-norm sees only live weights)."""

    def __init__(self, in_features: int, out_features: int, mask: torch.Tensor):
        super().__init__(in_features, out_features)
        self.register_buffer("mask", mask.to(self.weight.dtype), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


@torch.no_grad()
def zero_masked_(module: nn.Module) -> None:
    """Zero the masked-out weights of every MaskedLinear in ``module`` (after initialising)."""
    for sub in module.modules():
        if isinstance(sub, MaskedLinear):
            sub.weight.mul_(sub.mask)


class MaskedConditioner(nn.Module):
    """c (..., C) and x (..., D) -> (..., D, P) whose row d depends on c and x_<d only.

    One hidden ReLU layer of ``hidden`` units; unit k has a degree m_k in 1..D-1 and sees
    x_1..x_{m_k} (and all of c); output row d (1-based) reads the units with m_k < d. Row 1
    gets nothing from here (its conditional is the direct path's alone).
    """

    def __init__(self, context: int, x_dim: int, n_params: int, hidden: int):
        super().__init__()
        self.x_dim, self.n_params = x_dim, n_params
        degrees = torch.arange(hidden) % max(x_dim - 1, 1) + 1  # spread evenly over 1..D-1
        dims = torch.arange(1, x_dim + 1)
        in_mask = dims[None, :] <= degrees[:, None]  # (hidden, D)
        out_mask = degrees[None, :] < dims[:, None]  # (D, hidden)
        if x_dim == 1:  # nothing to condition on
            in_mask, out_mask = in_mask & False, out_mask & False
        self.x_in = MaskedLinear(x_dim, hidden, in_mask)
        self.context_in = nn.Linear(context, hidden)
        self.out = MaskedLinear(hidden, x_dim * n_params, out_mask.repeat_interleave(n_params, 0))

    def forward(self, context: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        hidden = F.relu(self.context_in(context) + self.x_in(x.to(context.dtype)))
        return self.out(hidden).float().unflatten(-1, (self.x_dim, self.n_params))

    # one dimension at a time, for sampling: the pre-activation after x_<d, updated by x_d
    def stepper(self, context: torch.Tensor) -> _ChainStepper:
        return _ChainStepper(self, context)


class _ChainStepper:
    """The conditioner's rows one at a time: masked weights made once per chain, the hidden
    pre-activation updated by each new x_d (O(hidden) per dimension, not a whole pass)."""

    def __init__(self, conditioner: MaskedConditioner, context: torch.Tensor):
        c = conditioner
        self.n_params = c.n_params
        self.w_in = (c.x_in.weight * c.x_in.mask).float().t()  # (D, hidden)
        self.w_out = (c.out.weight * c.out.mask).float()  # (D * P, hidden)
        self.b_out = c.out.bias.float()
        self.pre = (c.context_in(context) + c.x_in.bias).float()

    def row(self, d: int) -> torch.Tensor:
        rows = slice(d * self.n_params, (d + 1) * self.n_params)
        return F.linear(F.relu(self.pre), self.w_out[rows], self.b_out[rows])

    def update(self, d: int, x_d: torch.Tensor) -> None:
        self.pre = self.pre + x_d.float().unsqueeze(-1) * self.w_in[d]


class ScalarMixture:
    """The conditionals' family: a Gaussian (K = 1) or a K-component mixture of Gaussians per
    dimension, from raw parameters (..., D, P): P = 2 (mean, scale) or 3K (logits, means,
    scales)."""

    def __init__(self, k: int, min_std: float):
        self.k, self.min_std = k, min_std
        self.n_params = 2 if k == 1 else 3 * k

    def __call__(self, raw: torch.Tensor) -> Distribution:
        if self.k == 1:
            return Normal(raw[..., 0], _std(raw[..., 1], self.min_std), **FAST)
        logits, mu, std = raw.split(self.k, dim=-1)
        return MixtureSameFamily(
            Categorical(logits=logits, **FAST),
            Normal(mu, _std(std, self.min_std), **FAST),
            **FAST,
        )


class DirectParams(nn.Module):
    """The paper's head for every conditional: c -> (..., D, P), linear, one set of mixture
    weights per dimension; the scales' layer is a scale head (bias 0.6 under paper init)."""

    def __init__(self, context: int, x_dim: int, k: int):
        super().__init__()
        self.x_dim, self.k = x_dim, k
        self.mu = nn.Linear(context, x_dim * k)
        self.std = scale_head(context, x_dim * k)
        self.logits = nn.Linear(context, x_dim * k) if k > 1 else None

    def forward(self, context: torch.Tensor) -> torch.Tensor:
        parts = [self.mu(context), self.std(context)]
        if self.logits is not None:
            parts.insert(0, self.logits(context))
        # (..., D, P) laid out per dimension as the conditioner's rows: [logits, mu, std]
        return torch.cat([p.float().unflatten(-1, (self.x_dim, self.k)) for p in parts], -1)


class ChainSampling:
    """sample() and mean of a distribution drawn one conditional at a time by its
    ``_chain(sample_shape, pick)``, ``pick`` choosing each conditional's value."""

    def sample(self, sample_shape=_SCALAR) -> torch.Tensor:
        with torch.no_grad():
            return self._chain(sample_shape, lambda dist: dist.sample())

    @property
    def mean(self) -> torch.Tensor:
        """The chain of conditional means: x_d = E[x_d | x_<d] with x_<d the means before it
        (the pen: its probability; what generation saves as the decoder mean; E[x] itself
        has no closed form here)."""
        with torch.no_grad():
            return self._chain(_SCALAR, lambda dist: dist.mean)


class AutoregressiveFrame(ChainSampling, Distribution):
    """p(x | c) = prod_d p(x_d | x_<d, c) over a frame x (..., D)."""

    arg_constraints: dict = {}
    support = constraints.real_vector
    has_rsample = False

    def __init__(self, head: AutoregressiveHead, context: torch.Tensor, validate_args=None):
        self.head, self.context = head, context
        self.direct = head.direct(context)
        shape = context.shape[:-1]
        super().__init__(shape, torch.Size([head.x_dim]), validate_args=validate_args)

    def conditionals(self, value: torch.Tensor) -> Distribution:
        """Every dimension's conditional p(x_d | value_<d, c), batch (..., D): one pass."""
        raw = self.direct + self.head.conditioner(self.context, value)
        return self.head.family(raw)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return self.conditionals(value).log_prob(value.float()).sum(-1)

    def _chain(self, sample_shape, pick) -> torch.Tensor:
        shape = torch.Size(sample_shape) + self.batch_shape
        context = self.context.expand(*shape, self.context.shape[-1])
        direct = self.direct.expand(*shape, *self.direct.shape[-2:])
        stepper, out = self.head.conditioner.stepper(context), []
        for d in range(self.head.x_dim):
            x_d = pick(self.head.family(direct[..., d, :] + stepper.row(d)))
            out.append(x_d)
            stepper.update(d, x_d)
        return torch.stack(out, dim=-1)


class AutoregressiveHead(nn.Module):
    """Audio frames: a chain over the D samples, a Gaussian (k = 1) or K-mixture each."""

    def __init__(self, in_features: int, x_dim: int, k: int, min_std: float, hidden: int):
        super().__init__()
        self.x_dim = x_dim
        self.family = ScalarMixture(k, min_std)
        self.direct = DirectParams(in_features, x_dim, k)
        self.conditioner = MaskedConditioner(in_features, x_dim, self.family.n_params, hidden)

    def forward(self, hidden: torch.Tensor) -> AutoregressiveFrame:
        return AutoregressiveFrame(self, hidden, **FAST)


class AutoregressivePen(ChainSampling, Distribution):
    """p(pen, dx, dy | c) = p(pen | c) p(dx | pen, c) p(dy | pen, dx, c) (Dai et al.'s
    handwriting head), a value (..., 3) laid out (pen, dx, dy) as the paper's."""

    arg_constraints: dict = {}
    support = constraints.real_vector
    has_rsample = False

    def __init__(self, head: AutoregressivePenHead, context: torch.Tensor, validate_args=None):
        self.head, self.context = head, context
        self.pen = Bernoulli(logits=head.pen(context).float().squeeze(-1), **FAST)
        self.direct = head.direct(context)  # (..., 2, P): dx's and dy's direct parameters
        super().__init__(context.shape[:-1], torch.Size([3]), validate_args=validate_args)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        value = value.float()
        raw = self.direct + self.head.conditioner(self.context, value)[..., 1:, :]
        offsets = self.head.family(raw).log_prob(value[..., 1:]).sum(-1)
        return self.pen.log_prob(value[..., 0]) + offsets

    def _chain(self, sample_shape, pick) -> torch.Tensor:
        shape = torch.Size(sample_shape) + self.batch_shape
        context = self.context.expand(*shape, self.context.shape[-1])
        direct = self.direct.expand(*shape, *self.direct.shape[-2:])
        pen = pick(self.pen.expand(shape))
        stepper, out = self.head.conditioner.stepper(context), [pen]
        stepper.update(0, pen)
        for d in (1, 2):
            x_d = pick(self.head.family(direct[..., d - 1, :] + stepper.row(d)))
            out.append(x_d)
            stepper.update(d, x_d)
        return torch.stack(out, dim=-1)


class AutoregressivePenHead(nn.Module):
    """Strokes: the pen bit, then dx given the pen, then dy given the pen and dx; each offset
    a Gaussian (k = 1) or a K-mixture."""

    def __init__(self, in_features: int, k: int, min_std: float, hidden: int):
        super().__init__()
        self.family = ScalarMixture(k, min_std)
        self.pen = nn.Linear(in_features, 1)  # pen-lift probability = sigmoid(pen)
        self.direct = DirectParams(in_features, 2, k)
        self.conditioner = MaskedConditioner(in_features, 3, self.family.n_params, hidden)

    def forward(self, hidden: torch.Tensor) -> AutoregressivePen:
        return AutoregressivePen(self, hidden, **FAST)


def autoregressive_head(
    observation: str, in_features: int, x_dim: int, k: int, min_std: float, hidden: int
) -> nn.Module:
    """The decoder's within-frame head for an observation kind; k = 1 is the Gauss case."""
    if observation == "strokes":
        if x_dim != 3:
            raise ValueError(f"pen steps are (pen, dx, dy): x_dim must be 3, got {x_dim}")
        return AutoregressivePenHead(in_features, k, min_std, hidden)
    return AutoregressiveHead(in_features, x_dim, k, min_std, hidden)
