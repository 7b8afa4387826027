"""Output heads that turn a hidden vector into a torch.distributions object.

Every head computes its parameters in float32 (also under bf16 autocast), and every scale is
``softplus(a) + min_std`` as in the original code.

- ``GaussianHead``: diagonal Gaussian over a frame (also the latent prior and posterior).
- ``GMMHead``: K-component diagonal GMM, one weight per component shared across dimensions
  (``DiagonalGMM``: MixtureSameFamily's density in fewer passes over the (..., D, K) tensors).
- ``PenHead``: the IAM-OnDB output: a K-component bivariate Gaussian mixture over (dx, dy)
  with a correlation per component, and a Bernoulli pen bit.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import (
    Bernoulli,
    Categorical,
    Distribution,
    Independent,
    MixtureSameFamily,
    Normal,
    constraints,
)

from .networks import scale_head

# what one step x_t is: a frame of audio samples (a Gaussian or GMM head), or a pen step
# (pen, dx, dy) of handwriting strokes (a Bernoulli pen and a bivariate Gaussian or GMM)
OBSERVATIONS = ("audio", "strokes")

_SCALAR = torch.Size()  # a single sample
# No argument validation in the training path: it costs a check per tensor per step, and a
# NaN must reach the loss (where the training loop skips the step) instead of raising here.
FAST = {"validate_args": False}


def checks_values(validate_args: bool | None) -> bool:
    """Whether a distribution built with ``validate_args`` checks what log_prob is given:
    as asked, else while Python runs with assertions on (torch's own default)."""
    return __debug__ if validate_args is None else bool(validate_args)


def check_value(dist: Distribution, value) -> None:
    """ValueError unless ``value`` is a tensor of ``dist``'s event shape, broadcastable to
    its batch, inside its support (what torch's distributions check, on public attributes)."""
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"log_prob of {type(dist).__name__}: a Tensor, not {type(value)}")
    shape = dist.batch_shape + dist.event_shape
    event = len(dist.event_shape)
    if event and value.shape[-event:] != dist.event_shape:
        raise ValueError(
            f"log_prob: a value of event shape {tuple(dist.event_shape)}, not "
            f"{tuple(value.shape[-event:])}"
        )
    try:
        torch.broadcast_shapes(value.shape, shape)
    except RuntimeError:
        raise ValueError(
            f"log_prob: shape {tuple(value.shape)} does not broadcast to {tuple(shape)}"
        ) from None
    if not bool(dist.support.check(value).all()):
        raise ValueError(f"log_prob: a value outside the support of {type(dist).__name__}")


class _SoftplusInVectorPasses(torch.autograd.Function):
    """softplus(x) + shift, softplus(x) = log(1 + exp(x)) as F.softplus computes it (linear
    above 20), in passes that CPU torch vectorises. F.softplus's CPU forward goes through log1p,
    which runs about 7x slower than log there (measured on torch 2.14, AVX-512); with the scale
    heads' (rows, K x D) outputs that was a fifth of a small model's step. With u = 1 + e
    rounded, log1p(e) = log(u) + (e - (u - 1)) / u to within an ulp or two: u - 1 and
    e - (u - 1) are exact in floating point, and the quotient is the first-order correction
    for the rounding of 1 + e (it is e itself where 1 + e rounds to 1). Each pass after the
    first few writes into a tensor it made, so that large inputs cost no new memory."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, shift: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        e = torch.exp(torch.clamp(x, max=20.0))
        u = e + 1
        out = torch.log(u)
        correction = torch.sub(u, 1)
        torch.sub(e, correction, out=correction).div_(u)
        out.add_(correction)
        torch.where(x > 20.0, x, out, out=out)
        return out.add_(shift) if shift else out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (x,) = ctx.saved_tensors
        return grad * torch.sigmoid(x), None


def softplus(x: torch.Tensor, shift: float = 0.0) -> torch.Tensor:
    """F.softplus(x) + shift, its values and gradients; on the CPU in vectorised passes (a GPU
    runs F.softplus as one kernel, kept)."""
    if x.device.type == "cpu":
        return _SoftplusInVectorPasses.apply(x, shift)
    return F.softplus(x) + shift


def _std(raw: torch.Tensor, min_std: float) -> torch.Tensor:
    return softplus(raw.float(), min_std)


class GaussianHead(nn.Module):
    """Diagonal Gaussian: mean linear, std softplus + min_std. Returns Independent(Normal)."""

    def __init__(self, in_features: int, out_features: int, min_std: float = 1e-4):
        super().__init__()
        self.mu = nn.Linear(in_features, out_features)
        self.std = scale_head(in_features, out_features)
        self.min_std = min_std

    def params(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mu(hidden).float(), _std(self.std(hidden), self.min_std)

    def forward(self, hidden: torch.Tensor) -> Independent:
        return Independent(Normal(*self.params(hidden), **FAST), 1, **FAST)


class GMMHead(nn.Module):
    """K diagonal Gaussians over the whole frame, mixed by one weight per component."""

    def __init__(self, in_features: int, x_dim: int, n_components: int, min_std: float = 1e-4):
        super().__init__()
        self.x_dim, self.k = x_dim, n_components
        self.mu = nn.Linear(in_features, x_dim * n_components)
        self.std = scale_head(in_features, x_dim * n_components)
        self.logits = nn.Linear(in_features, n_components)
        self.min_std = min_std

    def forward(self, hidden: torch.Tensor) -> DiagonalGMM:
        # the original code lays the output out dimension-major, component-minor: (D, K)
        shape = (*hidden.shape[:-1], self.x_dim, self.k)
        mu = self.mu(hidden).float().view(shape)
        std = _std(self.std(hidden), self.min_std).view(shape)
        return DiagonalGMM(self.logits(hidden).float(), mu, std, **FAST)


class DiagonalGMM(Distribution):
    """A mixture of K diagonal Gaussians over D dimensions, with ``loc`` and ``scale`` laid out
    (..., D, K) and mixture ``logits`` (..., K).

    The same distribution as ``MixtureSameFamily(Categorical(logits),
    Independent(Normal(loc^T, scale^T), 1))`` (tested equal, gradients included), with a
    log_prob that makes three passes over the (..., D, K) tensors forward and four backward
    (``_diag_gauss_log_prob``) instead of torch's ten and about fifteen: at the TIMIT size
    (K = 20, D = 200) this density was a fifth of a training step and most of IWAE's cost.
    """

    arg_constraints = {
        "logits": constraints.real_vector,
        "loc": constraints.real,
        "scale": constraints.positive,
    }
    support = constraints.real_vector
    has_rsample = False

    def __init__(self, logits, loc, scale, validate_args=None):
        self.logits, self.loc, self.scale = logits, loc, scale
        self.checks_values = checks_values(validate_args)
        super().__init__(loc.shape[:-2], loc.shape[-2:-1], validate_args=validate_args)

    @property
    def mixture_distribution(self) -> Categorical:
        return Categorical(logits=self.logits, **FAST)

    @property
    def mean(self) -> torch.Tensor:
        weights = torch.softmax(self.logits, dim=-1).unsqueeze(-2)
        return (self.loc * weights).sum(-1)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self.checks_values:
            check_value(self, value)
        per_component = _DiagGaussLogProb.apply(value, self.loc, self.scale)
        return torch.logsumexp(torch.log_softmax(self.logits, -1) + per_component, dim=-1)

    def sample(self, sample_shape=_SCALAR) -> torch.Tensor:
        with torch.no_grad():
            k = self.mixture_distribution.sample(sample_shape)  # (*sample, *batch)
            index = k[..., None, None].expand(*k.shape, self.event_shape[0], 1)
            shape = (*sample_shape, *self.loc.shape)
            loc = self.loc.expand(shape).gather(-1, index).squeeze(-1)
            scale = self.scale.expand(shape).gather(-1, index).squeeze(-1)
            return loc + scale * torch.randn_like(loc)


class _DiagGaussLogProb(torch.autograd.Function):
    """log N(x; loc_k, diag(scale_k^2)) for every component k, summed over the D dimensions.

    x (..., D); loc and scale (..., D, K); returns (..., K). With n = (x - loc) / scale the
    gradients are d/d loc = g n / scale and d/d scale = g (n^2 - 1) / scale, written out so
    that backward makes four passes and keeps only n and scale. Always float32, also under
    autocast. (Expanding the quadratic into x^2 / s^2 - 2 x mu / s^2 + mu^2 / s^2 turns the
    x-parts into matmuls, but cancels catastrophically in float32 when |x| >> scale, e.g.
    scales near min_std; and it was not faster: its backward makes more passes.)
    """

    @staticmethod
    def forward(ctx, x, loc, scale):
        with torch.autocast(x.device.type, enabled=False):
            n = torch.sub(x.unsqueeze(-1), loc).div_(scale)
            quad = torch.linalg.vecdot(n, n, dim=-2)
            log_det = scale.log().sum(-2)
        ctx.save_for_backward(n, scale)
        ctx.shapes = x.shape, loc.shape
        return -0.5 * quad - log_det - 0.5 * x.shape[-1] * math.log(2 * math.pi)

    @staticmethod
    def backward(ctx, grad):
        n, scale = ctx.saved_tensors
        x_shape, loc_shape = ctx.shapes
        grad = grad.unsqueeze(-2)
        grad_loc = torch.div(n, scale).mul_(grad)
        grad_scale = torch.mul(n, grad_loc).addcdiv_(grad, scale, value=-1)
        grad_x = -grad_loc.sum(-1).sum_to_size(x_shape) if ctx.needs_input_grad[0] else None
        return grad_x, grad_loc.sum_to_size(loc_shape), grad_scale.sum_to_size(scale.shape)


class BivariateNormal(Distribution):
    """A bivariate Gaussian with a correlation, in closed form.

    Parameterised by ``corr_logit`` = atanh(rho), so that log(1 - rho^2) = -2 log cosh(a)
    stays finite where tanh would round rho to +-1. Agrees with MultivariateNormal with
    covariance [[s1^2, rho s1 s2], [rho s1 s2, s2^2]] (tested), at a fraction of its cost.
    """

    arg_constraints = {
        "loc": constraints.real_vector,
        "scale": constraints.independent(constraints.positive, 1),
        "corr_logit": constraints.real,
    }
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, loc, scale, corr_logit, validate_args=None):
        self.loc, self.scale, self.corr_logit = loc, scale, corr_logit
        self.checks_values = checks_values(validate_args)
        super().__init__(loc.shape[:-1], torch.Size([2]), validate_args=validate_args)

    @property
    def corr(self) -> torch.Tensor:
        return torch.tanh(self.corr_logit)

    @property
    def mean(self) -> torch.Tensor:
        return self.loc

    def _log_one_minus_corr_sq(self) -> torch.Tensor:
        a = self.corr_logit
        log_cosh = F.softplus(2 * a) - a - math.log(2.0)
        return -2.0 * log_cosh

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self.checks_values:
            check_value(self, value)
        n = (value - self.loc) / self.scale
        n1, n2 = n[..., 0], n[..., 1]
        rho = self.corr
        log_1m_rho2 = self._log_one_minus_corr_sq()
        quad = (n1.square() + n2.square() - 2 * rho * n1 * n2) * torch.exp(-log_1m_rho2)
        log_det = self.scale.log().sum(-1) + 0.5 * log_1m_rho2
        return -math.log(2 * math.pi) - log_det - 0.5 * quad

    def rsample(self, sample_shape=_SCALAR) -> torch.Tensor:
        shape = torch.Size(sample_shape) + self.batch_shape + self.event_shape
        eps = torch.randn(shape, dtype=self.loc.dtype, device=self.loc.device)
        rho = self.corr
        e1, e2 = eps[..., 0], eps[..., 1]
        # Cholesky factor of the correlation matrix: [[1, 0], [rho, sqrt(1 - rho^2)]]
        y2 = rho * e1 + torch.exp(0.5 * self._log_one_minus_corr_sq()) * e2
        return self.loc + self.scale * torch.stack([e1, y2], dim=-1)

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        return BivariateNormal(
            self.loc.expand(batch_shape + (2,)),
            self.scale.expand(batch_shape + (2,)),
            self.corr_logit.expand(batch_shape),
            validate_args=self.checks_values,
        )


class PenDistribution(Distribution):
    """p(pen, dx, dy) = Bernoulli(pen) * mixture of bivariate Gaussians(dx, dy).

    A value is (..., 3) laid out as (pen, dx, dy), pen in {0, 1}; pen = 1 means the pen is
    lifted after this point.
    """

    arg_constraints: dict = {}
    support = constraints.real_vector

    def __init__(self, offsets: MixtureSameFamily, pen: Bernoulli, validate_args=None):
        self.offsets, self.pen = offsets, pen
        super().__init__(offsets.batch_shape, torch.Size([3]), validate_args=validate_args)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return self.pen.log_prob(value[..., 0]) + self.offsets.log_prob(value[..., 1:])

    def sample(self, sample_shape=_SCALAR) -> torch.Tensor:
        with torch.no_grad():
            pen = self.pen.sample(sample_shape)
            return torch.cat([pen.unsqueeze(-1), self.offsets.sample(sample_shape)], dim=-1)

    @property
    def mean(self) -> torch.Tensor:
        return torch.cat([self.pen.mean.unsqueeze(-1), self.offsets.mean], dim=-1)


class PenHead(nn.Module):
    """The IAM-OnDB output: K bivariate Gaussians with correlation, plus a pen-lift bit."""

    def __init__(self, in_features: int, n_components: int, min_std: float = 1e-4):
        super().__init__()
        self.k = n_components
        self.mu = nn.Linear(in_features, 2 * n_components)
        self.std = scale_head(in_features, 2 * n_components)
        self.corr = nn.Linear(in_features, n_components)  # rho = tanh(corr)
        # one component (the Gauss variants) needs no mixture weights
        self.logits = nn.Linear(in_features, n_components) if n_components > 1 else None
        self.pen = nn.Linear(in_features, 1)  # pen-lift probability = sigmoid(pen)
        self.min_std = min_std

    def forward(self, hidden: torch.Tensor) -> PenDistribution:
        # the original code lays mu and sigma out as (2, K): row 0 is dx, row 1 is dy
        shape = (*hidden.shape[:-1], 2, self.k)
        mu = self.mu(hidden).float().view(shape).transpose(-1, -2)
        std = _std(self.std(hidden), self.min_std).view(shape).transpose(-1, -2)
        if self.logits is None:
            logits = mu.new_zeros(mu.shape[:-1])
        else:
            logits = self.logits(hidden).float()
        offsets = MixtureSameFamily(
            Categorical(logits=logits, **FAST),
            BivariateNormal(mu, std, self.corr(hidden).float(), **FAST),
            **FAST,
        )
        pen = Bernoulli(logits=self.pen(hidden).float().squeeze(-1), **FAST)
        return PenDistribution(offsets, pen, **FAST)


def output_head(
    observation: str, in_features: int, x_dim: int, n_components: int, min_std: float
) -> nn.Module:
    """The decoder's output head for an observation kind; n_components=1 is the Gauss case."""
    if observation == "strokes":
        if x_dim != 3:
            raise ValueError(f"pen steps are (pen, dx, dy): x_dim must be 3, got {x_dim}")
        return PenHead(in_features, n_components, min_std)
    if observation != "audio":
        raise ValueError(
            f"observation: '{observation}' is not an observation kind; valid: "
            f"{', '.join(OBSERVATIONS)}"
        )
    if n_components == 1:
        return GaussianHead(in_features, x_dim, min_std)
    return GMMHead(in_features, x_dim, n_components, min_std)
