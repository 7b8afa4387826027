"""SMC(K): the particle filter and the VRNN's SMC estimator behave as theory says."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import TINY_MODEL

from vrnn_lightning import estimators, smc
from vrnn_lightning.lgssm import LGSSM
from vrnn_lightning.model import VRNN


def make(variant, seed=0):
    torch.manual_seed(seed)
    # torch's default init gives a posterior far from the prior: weights vary a lot
    return VRNN(variant, x_dim=4, init="torch", **TINY_MODEL).eval()


def batch(n=5, steps=9, seed=3):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, steps, 4, generator=g)
    mask = torch.ones(n, steps, dtype=torch.bool)
    mask[1, 5:] = False
    mask[3, 2:] = False
    return x, mask


@pytest.mark.parametrize("variant", ["vrnn_gauss", "vrnn_i_gmm"])
def test_one_particle_is_the_single_sample_log_weight_sum(variant):
    model = make(variant)
    x, mask = batch()
    noise = torch.randn(5, 9, TINY_MODEL["z_dim"])
    with torch.no_grad():
        est = estimators.smc(model, x, mask, k=1, ess_threshold=1.0, noise=noise)
        log_w = model(x, mask, noise=noise).log_weight.sum(1)
    torch.testing.assert_close(est.per_sequence, log_w, atol=1e-4, rtol=1e-5)
    assert (est.n_resampled == 0).all()  # one particle: the ESS is always K


@pytest.mark.parametrize("variant", ["vrnn_gmm", "vrnn_i_gauss"])
def test_without_resampling_it_is_iwae_on_the_same_noise(variant):
    model = make(variant)
    x, mask = batch()
    k = 6
    noise = torch.randn(k * 5, 9, TINY_MODEL["z_dim"])
    with torch.no_grad():
        est = estimators.smc(model, x, mask, k=k, ess_threshold=0.0, noise=noise)
        log_w = model(x, mask, n_samples=k, noise=noise).log_weight.sum(1).view(k, 5)
        # and with resampling the same noise gives a different number: resampling is on
        resampled = estimators.smc(model, x, mask, k=k, ess_threshold=1.0, noise=noise)
    torch.testing.assert_close(est.per_sequence, torch.logsumexp(log_w, 0) - math.log(k))
    assert (est.n_resampled == 0).all()
    assert (resampled.n_resampled > 0).all()
    assert not torch.allclose(resampled.per_sequence, est.per_sequence)


@pytest.mark.parametrize("resampling", smc.RESAMPLING)
def test_padded_tail_changes_nothing(resampling):
    model = make("vrnn_gauss")
    x, mask = batch()
    garbage = x.clone()
    garbage[~mask] = float("nan")
    runs = []
    for xs in (x, garbage):
        torch.manual_seed(11)
        with torch.no_grad():
            runs.append(estimators.smc(model, xs, mask, k=8, resampling=resampling))
    torch.testing.assert_close(runs[0].per_sequence, runs[1].per_sequence)
    assert torch.equal(runs[0].n_resampled, runs[1].n_resampled)
    # one sequence: padded to 9 steps or cut at its 5 steps, the same draws, the same result
    one, alone = [], []
    for xs, ms, out in ((x[1:2], mask[1:2], one), (x[1:2, :5], mask[1:2, :5], alone)):
        torch.manual_seed(12)
        with torch.no_grad():
            out.append(estimators.smc(model, xs, ms, k=8, resampling=resampling))
    torch.testing.assert_close(one[0].per_sequence, alone[0].per_sequence)
    assert torch.equal(one[0].n_resampled, alone[0].n_resampled)
    assert runs[0].n_resampled[3] == 0  # two steps: only step 1 could, and it is the last


def test_rnn_variants_give_the_exact_likelihood():
    model = make("rnn_gmm")
    x, mask = batch()
    with torch.no_grad():
        exact = model(x, mask).log_px.sum(1)
        est = estimators.smc(model, x, mask, k=5, ess_threshold=1.0)
    torch.testing.assert_close(est.per_sequence, exact, atol=1e-4, rtol=1e-5)
    assert (est.n_resampled == 0).all()  # identical particles: the ESS is K


def test_particles_of_all_sequences_run_as_one_batch(monkeypatch):
    """One model.step per time step over K * B rows, not a loop over sequences or particles."""
    model = make("vrnn_gauss")
    x, mask = batch()
    rows = []
    step = model.step
    monkeypatch.setattr(
        model, "step", lambda x_t, *a, **kw: rows.append(len(x_t)) or step(x_t, *a, **kw)
    )
    with torch.no_grad():
        estimators.smc(model, x, mask, k=7, ess_threshold=1.0)
    assert rows == [7 * 5] * 9


def test_systematic_and_multinomial_ancestors():
    log_w = torch.log(torch.tensor([[0.1, 0.25], [0.0, 0.25], [0.9, 0.25], [0.0, 0.25]]))
    g = torch.Generator().manual_seed(0)
    # equal weights: systematic keeps every particle exactly once
    assert sorted(smc.systematic(log_w, g)[:, 1].tolist()) == [0, 1, 2, 3]
    # zero weight is never chosen; column 0's particle 2 (weight 0.9) takes 3 or 4 of 4 places
    first = smc.systematic(log_w, g)[:, 0]
    assert set(first.tolist()) <= {0, 2} and (first == 2).sum() >= 3
    draws = torch.cat([smc.multinomial(log_w, g)[:, 0] for _ in range(2000)])
    freq = torch.bincount(draws, minlength=4).double() / len(draws)
    torch.testing.assert_close(
        freq, torch.tensor([0.1, 0.0, 0.9, 0.0], dtype=torch.float64), atol=0.02, rtol=0
    )


def test_bad_settings_are_refused():
    step = lambda t, s: (torch.zeros(2), s)  # noqa: E731
    mask = torch.ones(1, 3, dtype=torch.bool)
    with pytest.raises(ValueError, match="resampling"):
        smc.particle_filter(step, (torch.zeros(2, 1),), mask, 2, resampling="stratified")
    with pytest.raises(ValueError, match="ess_threshold"):
        smc.particle_filter(step, (torch.zeros(2, 1),), mask, 2, ess_threshold=2.0)


def _lgssm() -> LGSSM:
    """Small: observation noise small enough that the bootstrap filter's weights degenerate and
    resampling fires, large enough (with 6 steps) that its estimate's variance stays small."""
    g = torch.Generator().manual_seed(5)
    return LGSSM(
        A=torch.tensor([[0.9, -0.2], [0.2, 0.9]], dtype=torch.float64),
        C=torch.randn(2, 2, generator=g, dtype=torch.float64),
        Q=0.2 * torch.eye(2, dtype=torch.float64),
        R=0.5 * torch.eye(2, dtype=torch.float64),
        P1=torch.eye(2, dtype=torch.float64),
    )


@pytest.mark.parametrize("resampling", smc.RESAMPLING)
def test_the_estimate_of_p_x_is_unbiased_on_a_linear_gaussian_model(resampling):
    """E[p_hat(x)] = p(x): the mean of exp(estimate - exact) over independent filters of one
    sequence is 1 within its Monte Carlo error, though resampling fires; log p_hat itself is
    biased low (Jensen), which the same runs show."""
    lgssm = _lgssm()
    x = lgssm.sample(1, 6, torch.Generator().manual_seed(3))
    exact = lgssm.exact_log_likelihood(x)
    runs, k = 4000, 8
    g = torch.Generator().manual_seed(0)
    step, state = lgssm.bootstrap_step(x.expand(runs, -1, -1), k, g)
    mask = torch.ones(runs, 6, dtype=torch.bool)
    result = smc.particle_filter(step, state, mask, k, resampling, 0.5, g)
    ratio = torch.exp(result.log_marginal - exact)
    std_err = ratio.std() / math.sqrt(runs)
    assert abs(ratio.mean() - 1) < 4 * std_err, (ratio.mean(), std_err)
    # the test can tell a bias of a few percent (ancestors drawn ignoring the weights: 0.54)
    assert std_err < 0.03
    assert result.n_resampled.float().mean() > 1  # resampling was exercised
    assert result.log_marginal.mean() < exact - 4 * result.log_marginal.std() / math.sqrt(runs)
