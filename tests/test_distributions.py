"""Each output head's log_prob against an independent reference; KL against Monte Carlo."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import (
    Categorical,
    Independent,
    MixtureSameFamily,
    MultivariateNormal,
    Normal,
    kl_divergence,
)

from vrnn_lightning.distributions import (
    BivariateNormal,
    DiagonalGMM,
    GaussianHead,
    GMMHead,
    PenHead,
    output_head,
    softplus,
)

torch.manual_seed(0)


def _spec_gauss_nll(x, mu, sigma):
    # the original's formula (cle's cost.py; docs/paper.md), summed over dims
    return 0.5 * ((x - mu) ** 2 / sigma**2 + 2 * sigma.log() + math.log(2 * math.pi)).sum(-1)


def test_gaussian_head_matches_spec_formula():
    head = GaussianHead(8, 5)
    hidden, x = torch.randn(4, 3, 8), torch.randn(4, 3, 5)
    dist = head(hidden)
    mu, sigma = head.mu(hidden), torch.nn.functional.softplus(head.std(hidden)) + 1e-4
    torch.testing.assert_close(dist.log_prob(x), -_spec_gauss_nll(x, mu, sigma))
    assert dist.batch_shape == (4, 3) and dist.event_shape == (5,)


def test_scale_never_below_min_std():
    head = GaussianHead(2, 3, min_std=1e-4)
    with torch.no_grad():
        head.std.bias.fill_(-200.0)
    scale = head(torch.zeros(1, 2)).base_dist.scale
    torch.testing.assert_close(scale, torch.full_like(scale, 1e-4))  # float32 1e-4


def test_gmm_head_matches_spec_layout_and_formula():
    d, k = 6, 4
    head = GMMHead(8, d, k)
    hidden, x = torch.randn(5, 8), torch.randn(5, d)
    # cle's GMM: outputs reshaped (N, D, K), one weight per component shared across D dims
    mu = head.mu(hidden).view(5, d, k)
    sigma = (torch.nn.functional.softplus(head.std(hidden)) + 1e-4).view(5, d, k)
    log_alpha = torch.log_softmax(head.logits(hidden), -1)
    per_comp = torch.stack(
        [-_spec_gauss_nll(x, mu[:, :, j], sigma[:, :, j]) for j in range(k)], dim=-1
    )
    expected = torch.logsumexp(log_alpha + per_comp, dim=-1)
    torch.testing.assert_close(head(hidden).log_prob(x), expected)


@pytest.mark.parametrize("corr_logit", [-2.0, -0.3, 0.0, 0.7, 2.5])
def test_bivariate_normal_matches_multivariate_normal(corr_logit):
    loc, scale = torch.tensor([0.3, -1.2]), torch.tensor([0.8, 1.7])
    a = torch.tensor(corr_logit)
    rho = torch.tanh(a)
    cov = torch.stack(
        [
            torch.stack([scale[0] ** 2, rho * scale[0] * scale[1]]),
            torch.stack([rho * scale[0] * scale[1], scale[1] ** 2]),
        ]
    )
    reference = MultivariateNormal(loc.double(), covariance_matrix=cov.double())
    values = torch.randn(50, 2) * 2
    ours = BivariateNormal(loc, scale, a).log_prob(values)
    torch.testing.assert_close(
        ours.double(), reference.log_prob(values.double()), atol=1e-5, rtol=1e-5
    )


def test_bivariate_normal_samples_have_its_covariance():
    loc, scale, a = torch.tensor([1.0, -2.0]), torch.tensor([0.5, 2.0]), torch.tensor(0.8)
    samples = BivariateNormal(loc, scale, a).rsample((200_000,))
    rho = math.tanh(0.8)
    emp_cov = torch.cov(samples.T)
    expected = torch.tensor([[0.25, rho * 1.0], [rho * 1.0, 4.0]])
    torch.testing.assert_close(samples.mean(0), loc, atol=0.02, rtol=0)
    torch.testing.assert_close(emp_cov, expected, atol=0.03, rtol=0.02)


def test_bivariate_normal_stays_finite_where_tanh_rounds_to_one():
    dist = BivariateNormal(torch.zeros(2), torch.ones(2), torch.tensor(30.0))
    assert torch.tanh(torch.tensor(30.0)).item() == 1.0
    assert torch.isfinite(dist.log_prob(torch.tensor([0.1, 0.1])))


def test_pen_head_matches_mixture_of_multivariate_normals_plus_bernoulli():
    k = 3
    head = PenHead(8, k)
    hidden = torch.randn(4, 8)
    x = torch.cat([torch.tensor([[1.0], [0.0], [0.0], [1.0]]), torch.randn(4, 2)], dim=-1)
    mu = head.mu(hidden).view(4, 2, k)
    sigma = (torch.nn.functional.softplus(head.std(hidden)) + 1e-4).view(4, 2, k)
    rho = torch.tanh(head.corr(hidden))
    log_alpha = torch.log_softmax(head.logits(hidden), -1)
    comps = []
    for j in range(k):
        s1, s2, r = sigma[:, 0, j], sigma[:, 1, j], rho[:, j]
        cov = torch.stack(
            [torch.stack([s1**2, r * s1 * s2], -1), torch.stack([r * s1 * s2, s2**2], -1)], -2
        )
        comps.append(MultivariateNormal(mu[:, :, j], covariance_matrix=cov).log_prob(x[:, 1:]))
    b = torch.sigmoid(head.pen(hidden)).squeeze(-1)
    e = x[:, 0]
    expected = torch.logsumexp(log_alpha + torch.stack(comps, -1), -1) + (
        e * b.log() + (1 - e) * (1 - b).log()
    )
    torch.testing.assert_close(head(hidden).log_prob(x), expected, atol=1e-5, rtol=1e-5)


def test_pen_head_samples_pen_bits_and_offsets():
    sample = PenHead(8, 2)(torch.randn(10, 8)).sample()
    assert sample.shape == (10, 3)
    assert set(sample[:, 0].tolist()) <= {0.0, 1.0}


def test_kl_matches_monte_carlo():
    q = Normal(torch.tensor([0.3, -1.0, 2.0]), torch.tensor([0.5, 1.3, 0.2]))
    p = Normal(torch.tensor([0.0, 0.5, 1.5]), torch.tensor([1.0, 0.7, 0.9]))
    z = q.sample((400_000,))
    monte_carlo = (q.log_prob(z) - p.log_prob(z)).mean(0)
    torch.testing.assert_close(kl_divergence(q, p), monte_carlo, atol=0.01, rtol=0.01)


def test_output_head_rejects_bad_observation():
    with pytest.raises(ValueError, match="x_dim must be 3"):
        output_head("strokes", 4, 5, 1, 1e-4)
    with pytest.raises(ValueError, match="observation: .video. is not an observation kind"):
        output_head("video", 4, 5, 1, 1e-4)


def _torch_gmm(logits, loc, scale):
    """The reference: torch's own mixture of diagonal Gaussians, components over the last dim."""
    components = Independent(Normal(loc.transpose(-1, -2), scale.transpose(-1, -2)), 1)
    return MixtureSameFamily(Categorical(logits=logits), components)


def _gmm_params(n, d, k, scale_range, x_scale, dtype=torch.float32):
    logits = torch.randn(n, k, dtype=dtype)
    loc = torch.randn(n, d, k, dtype=dtype)
    lo, hi = scale_range
    scale = torch.exp(torch.empty(n, d, k, dtype=dtype).uniform_(math.log(lo), math.log(hi)))
    # x near one component's mean (so that its density dominates), scaled out to large |x|
    near = loc[..., 0] + scale[..., 0] * torch.randn(n, d, dtype=dtype)
    x = x_scale * near
    return logits, x_scale * loc, scale, x


@pytest.mark.parametrize(
    "scale_range, x_scale",
    [((0.3, 3.0), 1.0), ((1e-4, 2e-4), 1.0), ((1e-4, 1e-2), 30.0), ((0.5, 1.0), 1e3)],
    ids=["ordinary", "near-min-std", "small-scales-large-x", "large-x"],
)
def test_diagonal_gmm_log_prob_and_gradients_match_mixture_same_family(scale_range, x_scale):
    # float32 against torch's MixtureSameFamily in float64 on the same float32 inputs (the
    # exact value of what float32 can represent), to 1e-4 relative
    torch.manual_seed(1)
    params = _gmm_params(16, 200, 5, scale_range, x_scale)
    ref_params = [p.double().requires_grad_(True) for p in params[:3]]
    ours_params = [p.clone().requires_grad_(True) for p in params[:3]]
    x = params[3]
    ref = _torch_gmm(*ref_params).log_prob(x.double())
    ours = DiagonalGMM(*ours_params).log_prob(x)
    torch.testing.assert_close(ours.double(), ref, rtol=1e-4, atol=1e-4 * ref.abs().max().item())
    weights = torch.randn(16, dtype=torch.float64)  # a loss that is not a plain sum
    ref_grads = torch.autograd.grad((ref * weights).sum(), ref_params)
    ours_grads = torch.autograd.grad((ours * weights.float()).sum(), ours_params)
    for name, g_ours, g_ref in zip(("logits", "loc", "scale"), ours_grads, ref_grads, strict=True):
        scale = g_ref.abs().max().item()
        torch.testing.assert_close(
            g_ours.double(), g_ref, rtol=1e-4, atol=1e-4 * scale, msg=lambda m, n=name: f"{n}: {m}"
        )


def test_diagonal_gmm_gradient_wrt_x_and_broadcast_values():
    torch.manual_seed(2)
    logits, loc, scale, x = _gmm_params(3, 7, 4, (0.2, 2.0), 1.0, dtype=torch.float64)
    x = x.requires_grad_(True)
    ref = torch.autograd.grad(_torch_gmm(logits, loc, scale).log_prob(x).sum(), x)[0]
    ours = torch.autograd.grad(DiagonalGMM(logits, loc, scale).log_prob(x).sum(), x)[0]
    torch.testing.assert_close(ours, ref)
    # values with a sample dimension in front broadcast over the batch, as in torch
    xs = torch.randn(5, 3, 7, dtype=torch.float64)
    torch.testing.assert_close(
        DiagonalGMM(logits, loc, scale).log_prob(xs), _torch_gmm(logits, loc, scale).log_prob(xs)
    )


def test_diagonal_gmm_mean_and_samples():
    torch.manual_seed(3)
    logits = torch.tensor([[0.0, 1.0, -1.0]])
    loc = torch.tensor([[[-4.0, 0.0, 5.0], [1.0, 2.0, 3.0]]])  # (1, D=2, K=3)
    scale = torch.tensor([[[0.5, 1.0, 0.2], [0.1, 0.3, 2.0]]])
    gmm, ref = DiagonalGMM(logits, loc, scale), _torch_gmm(logits, loc, scale)
    torch.testing.assert_close(gmm.mean, ref.mean)
    samples = gmm.sample((40_000,))
    assert samples.shape == (40_000, 1, 2)
    torch.testing.assert_close(samples.mean(0), ref.mean, atol=0.05, rtol=0.0)
    torch.testing.assert_close(samples.var(0), ref.variance, atol=0.1, rtol=0.02)


def test_gmm_head_log_prob_is_float32_under_bf16_autocast():
    head = GMMHead(8, 6, 3)
    hidden, x = torch.randn(4, 8), torch.randn(4, 6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        dist = head(hidden)
        log_prob = dist.log_prob(x)
    assert log_prob.dtype == torch.float32
    ref = _torch_gmm(dist.logits, dist.loc, dist.scale).log_prob(x)
    torch.testing.assert_close(log_prob, ref)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_softplus_equals_torch_softplus_in_value_and_gradient(dtype):
    x = torch.cat([torch.linspace(-90, 90, 200_001, dtype=dtype), torch.randn(10_000, dtype=dtype)])
    x.requires_grad_()
    ours, reference = softplus(x), F.softplus(x)
    relative = ((ours - reference).abs() / reference.clamp(min=torch.finfo(dtype).tiny)).max()
    assert relative <= (4e-7 if dtype == torch.float32 else 1e-15)
    assert torch.equal(ours[x > 20], x[x > 20])  # linear above 20, as F.softplus
    grad = torch.randn_like(x)
    (ours_grad,) = torch.autograd.grad(ours, x, grad)
    (reference_grad,) = torch.autograd.grad(reference, x, grad)
    torch.testing.assert_close(ours_grad, reference_grad, rtol=1e-6, atol=1e-30)
    special = torch.tensor([float("nan"), float("inf"), -float("inf"), 0.0], dtype=dtype)
    torch.testing.assert_close(softplus(special), F.softplus(special), equal_nan=True)
    # a scale head's softplus(a) + min_std, the shift added in place: the same sum
    shifted, reference_shifted = softplus(x, 1e-4), F.softplus(x) + 1e-4
    relative = ((shifted - reference_shifted).abs() / reference_shifted).max()
    assert relative <= (4e-7 if dtype == torch.float32 else 1e-15)
    (shifted_grad,) = torch.autograd.grad(shifted, x, grad)
    torch.testing.assert_close(shifted_grad, reference_grad, rtol=1e-6, atol=1e-30)
