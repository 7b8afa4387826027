"""The estimators behave as theory says, within noise that the tests bound."""

import math

import pytest
import torch
from conftest import TINY_MODEL

from vrnn_lightning import estimators
from vrnn_lightning.model import VRNN


def make(variant, seed=0):
    torch.manual_seed(seed)
    # torch's default init gives a posterior far from the prior: the bounds differ visibly
    return VRNN(variant, x_dim=4, init="torch", **TINY_MODEL).eval()


def batch(n=32, steps=5):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(n, steps, 4, generator=g)
    mask = torch.ones(n, steps, dtype=torch.bool)
    mask[::3, 3:] = False  # variable lengths
    return x, mask


@pytest.mark.parametrize("variant", ["rnn_gauss", "rnn_gmm"])
def test_all_estimators_are_the_exact_likelihood_for_rnns(variant):
    model = make(variant)
    x, mask = batch()
    with torch.no_grad():
        exact = model(x, mask).log_px.sum(1)
        for est in (
            estimators.elbo(model, x, mask),
            estimators.iwae(model, x, mask, k=7),
            estimators.paper_per_step_estimate(model, x, mask, k=7),
        ):
            torch.testing.assert_close(est.per_sequence, exact, atol=1e-4, rtol=1e-5)
        # every registered estimator, computed as itself (not by estimate_all's shortcut)
        scoring = estimators.Scoring(model, x, mask, k=7, ess_threshold=1.0)
        for name, estimator in estimators.ESTIMATORS.items():
            est = estimator.compute(scoring)
            torch.testing.assert_close(est.per_sequence, exact, atol=1e-4, rtol=1e-5, msg=name)


def test_the_registry_scores_every_estimator_and_labels_it():
    model = make("vrnn_gauss")
    x, mask = batch(n=4)
    torch.manual_seed(0)
    with torch.no_grad():
        scores = estimators.estimate_all(estimators.Scoring(model, x, mask, k=6))
    assert list(scores) == list(estimators.ESTIMATORS) == [
        "elbo", "iwae", "smc", "paper_estimate"
    ]  # fmt: skip
    for est in scores.values():
        assert est.per_sequence.shape == (4,) and torch.isfinite(est.per_sequence).all()
    assert scores["smc"].n_resampled.shape == (4,)
    labels = {n: e.label(6) for n, e in estimators.ESTIMATORS.items()}
    assert labels == {
        "elbo": "ELBO >=", "iwae": "IWAE(6) >=", "smc": "SMC(6) >=",
        "paper_estimate": "paper per-step(6) ≈",
    }  # fmt: skip


def test_per_frame_divides_by_the_valid_frames():
    model = make("vrnn_gauss")
    x, mask = batch()
    est = estimators.elbo(model, x, mask)
    torch.testing.assert_close(est.per_frame, est.per_sequence / mask.sum(1))
    assert est.n_frames[0] == 3 and est.n_frames[1] == 5


def _repeat(fn, reps):
    with torch.no_grad():
        return torch.stack([fn().per_sequence.mean() for _ in range(reps)])


@pytest.mark.parametrize("variant", ["vrnn_gauss", "vrnn_gmm", "vrnn_i_gauss"])
def test_iwae_is_above_the_elbo_and_grows_with_k(variant):
    model = make(variant)
    x, mask = batch()
    torch.manual_seed(1)
    reps = 40
    elbo = _repeat(lambda: estimators.elbo(model, x, mask), reps)
    by_k = {k: _repeat(lambda k=k: estimators.iwae(model, x, mask, k=k), reps) for k in (1, 4, 32)}

    def z_score(a, b):  # (mean a - mean b) in standard errors of the difference
        return (a.mean() - b.mean()) / math.sqrt(a.var() / reps + b.var() / reps)

    # IWAE(1) is an unbiased estimate of the ELBO: no significant difference
    assert abs(z_score(by_k[1], elbo)) < 4
    # IWAE(K) >= ELBO, and it grows with K, each by far more than the noise
    assert z_score(by_k[4], elbo) > 4
    assert z_score(by_k[32], by_k[4]) > 4
    assert by_k[32].mean() > by_k[4].mean() > elbo.mean()


def test_paper_estimator_is_the_per_step_log_mean_exp():
    model = make("vrnn_gmm")
    x, mask = batch(n=6)
    k = 5
    torch.manual_seed(7)
    with torch.no_grad():
        est = estimators.paper_per_step_estimate(model, x, mask, k=k)
        torch.manual_seed(7)
        log_w = model(x, mask, n_samples=k).log_weight.view(k, 6, -1)
    expected = ((torch.logsumexp(log_w, 0) - math.log(k)) * mask).sum(-1)
    torch.testing.assert_close(est.per_sequence, expected)
    # and it is not the sequence-level bound
    seq_level = torch.logsumexp(log_w.sum(-1), 0) - math.log(k)
    assert not torch.allclose(est.per_sequence, seq_level)


def test_iwae_samples_run_as_one_batch():
    """K samples are scored by one forward over K*B rows, not a Python loop over K."""
    model = make("vrnn_gauss")
    x, mask = batch(n=4)
    calls = []
    model.register_forward_hook(lambda m, args, out: calls.append(out.log_px.shape))
    with torch.no_grad():
        estimators.iwae(model, x, mask, k=10)
    assert calls == [torch.Size([40, 5])]
