"""The estimators behave as theory says, within noise that the tests bound."""

import math

import pytest
import torch
from conftest import TINY_MODEL

from vrnn_lightning import estimators
from vrnn_lightning.memory import peak_resident_mb
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


# ---- scoring in parts under a memory budget (eval.memory_gb) --------------------------


def _scores(model, x, mask, k, noise, max_rows, **kw):
    with torch.no_grad():
        scoring = estimators.Scoring(model, x, mask, k, noise=noise, max_rows=max_rows, **kw)
        return estimators.estimate_all(scoring)


@pytest.mark.parametrize("variant", ["vrnn_gauss", "vrnn_gmm", "vrnn_i_gauss"])
def test_scoring_in_parts_is_the_whole_scoring_on_the_same_noise(variant):
    """Sequences a few at a time (max_rows 10, 5: two sequences, one) and the samples of one
    sequence in groups (3, 1) compute every sequence's estimates as the whole batch does."""
    model = make(variant)
    x, mask = batch(n=7, steps=6)
    k = 5
    noise = torch.randn(k * 7, 6, TINY_MODEL["z_dim"], generator=torch.Generator().manual_seed(1))
    # SMC without resampling: with it, its uniforms come from the generator in another order
    whole = _scores(model, x, mask, k, noise, None, ess_threshold=0.0)
    for max_rows in (10, 5, 3, 1):
        parts = _scores(model, x, mask, k, noise, max_rows, ess_threshold=0.0)
        for name in estimators.ESTIMATORS:
            torch.testing.assert_close(
                parts[name].per_sequence, whole[name].per_sequence, atol=1e-4, rtol=1e-5,
                msg=f"{name}, max_rows {max_rows}",
            )  # fmt: skip
            assert torch.equal(parts[name].n_frames, whole[name].n_frames)
        # the ELBO is the same computation on the same rows, to the last bits (not to the bit:
        # some CPU kernels, F.softplus and sigmoid among them, give a value's last bit by the
        # size of the tensor it is in, and a pass of one sequence is a small tensor)
        torch.testing.assert_close(
            parts["elbo"].per_sequence, whole["elbo"].per_sequence, rtol=1e-6, atol=0
        )
        assert torch.equal(parts["smc"].n_resampled, whole["smc"].n_resampled)


def test_scoring_in_parts_runs_passes_of_at_most_max_rows():
    model = make("vrnn_gauss")
    x, mask = batch(n=7, steps=6)
    rows = []
    model.register_forward_hook(lambda m, args, out: rows.append(out.log_px.shape[0]))
    _scores(model, x, mask, 4, None, 9, ess_threshold=0.0)  # 2 sequences x 4 samples a pass
    assert rows == [2, 8] * 3 + [1, 4]  # ELBO then IWAE of each part (SMC steps one at a time)
    rows.clear()
    _scores(model, x[:1], mask[:1], 8, None, 3)  # one sequence: its 8 samples 3 at a time
    assert rows == [1, 3, 3, 2]


def test_rnn_variants_in_parts_are_the_exact_likelihood():
    model = make("rnn_gmm")
    x, mask = batch(n=7, steps=6)
    with torch.no_grad():
        exact = model(x, mask).log_px.sum(1)
    for name, est in _scores(model, x, mask, 5, None, 2).items():
        torch.testing.assert_close(est.per_sequence, exact, atol=1e-4, rtol=1e-5, msg=name)


def test_smc_in_parts_agrees_with_the_whole_within_monte_carlo_error():
    """With resampling, a split scoring draws its uniforms in another order: the estimates of
    one sequence scored 300 times agree in the mean within their Monte Carlo error."""
    model = make("vrnn_gauss")
    x, mask = batch(n=1, steps=5)
    n, k = 300, 8
    x, mask = x.expand(n, -1, -1), mask.expand(n, -1)
    torch.manual_seed(0)
    whole = _scores(model, x, mask, k, None, None, ess_threshold=1.0)["smc"]
    parts = _scores(model, x, mask, k, None, 3 * k, ess_threshold=1.0)["smc"]
    assert whole.n_resampled.float().mean() > 1 and parts.n_resampled.float().mean() > 1
    a, b = whole.per_sequence, parts.per_sequence
    z_score = (a.mean() - b.mean()) / math.sqrt(a.var() / n + b.var() / n)
    assert abs(z_score) < 4
    assert not torch.equal(a, b)  # the draws did differ: the test compares two samples


def test_rows_within_a_budget():
    model = make("vrnn_gmm")
    size = estimators.step_bytes(model)
    assert estimators.rows_within(size, 100, None, k=8) is None

    def held(n_seq, rows_per_seq):  # bytes of a pass over 100 steps
        return 100 * n_seq * (size.per_sequence + rows_per_seq * size.per_row)

    budget = 0.01 * 2**30
    rows = estimators.rows_within(size, 100, 0.01, k=8)  # whole sequences' 8 rows
    assert rows % 8 == 0 and held(rows // 8, 8) <= budget < held(rows // 8 + 1, 8)
    one_sequence = 0.5 * held(1, 8) / 2**30  # half of one sequence: groups of its samples
    rows = estimators.rows_within(size, 100, one_sequence, k=8)
    assert 1 <= rows < 8 and held(1, rows) <= one_sequence * 2**30 < held(1, rows + 1)
    assert estimators.rows_within(size, 10**9, 0.01, k=8) == 1  # never fewer than one row


@pytest.mark.parametrize("variant", ["vrnn_gauss", "srnn_gauss"])
def test_a_memory_budget_bounds_the_resident_peak(variant):
    """Scoring 8 sequences x 16 samples of 100 steps holds ~70 MB at once; under a 15 MB
    budget (a sequence at a time) the process's peak stays within it."""
    from vrnn_lightning.family import build_model

    torch.manual_seed(0)
    widths = dict(phi_x_dim=64, phi_z_dim=64, enc_dim=64, prior_dim=64, dec_dim=64)
    model = build_model(variant, x_dim=20, h_dim=256, z_dim=16, mlp_layers=1, **widths).eval()
    x, mask = torch.randn(8, 100, 20), torch.ones(8, 100, dtype=torch.bool)
    budget_gb, k = 0.015, 16

    def score(memory_gb):
        rows = estimators.rows_within(estimators.step_bytes(model), 100, memory_gb, k)
        _scores(model, x, mask, k, None, rows)

    score(budget_gb)  # one-off allocations (thread pools, caches) before measuring
    whole, split = peak_resident_mb(lambda: score(None)), peak_resident_mb(lambda: score(budget_gb))
    if whole is None:
        pytest.skip("no /proc/self/clear_refs here: the peak cannot be measured")
    assert whole > 50  # the unsplit scoring does hold far more than the budget
    assert split < budget_gb * 1024 * 1.5 and split < whole / 4, (split, whole)
