"""The exact-likelihood reference of vrnn_lightning/lgssm.py (bench/bench_lgssm.py's truth):
the joint Gaussian and the Kalman filter agree, and a trained rnn_gauss stays below it."""

from __future__ import annotations

import math

import pytest
import torch

from vrnn_lightning import estimators
from vrnn_lightning.lgssm import LGSSM, make_lgssm, train


@pytest.fixture
def one_thread():
    # tiny per-step ops: one thread is much faster than two on a shared CPU
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _non_stationary() -> LGSSM:
    """A smaller model whose z_1 covariance is not the stationary one and whose noises are
    not isotropic, so the marginal covariances change over time."""
    g = torch.Generator().manual_seed(3)
    A = torch.tensor([[0.9, -0.3], [0.2, 0.8]], dtype=torch.float64)
    return LGSSM(
        A=A,
        C=torch.randn(3, 2, generator=g, dtype=torch.float64),
        Q=torch.tensor([[0.3, 0.1], [0.1, 0.2]], dtype=torch.float64),
        R=torch.diag(torch.tensor([0.1, 0.5, 0.2], dtype=torch.float64)),
        P1=2.0 * torch.eye(2, dtype=torch.float64),
    )


@pytest.mark.parametrize("model", [make_lgssm(), _non_stationary()], ids=["bench", "other"])
def test_joint_gaussian_equals_kalman_filter(model):
    x = model.sample(5, 40, torch.Generator().manual_seed(1))
    joint = model.exact_log_likelihood(x)
    kalman = model.kalman_log_likelihood(x)
    torch.testing.assert_close(joint, kalman, atol=1e-4, rtol=0)
    # the diagonal predictive is a different model of the data: lower on average
    assert model.kalman_log_likelihood(x, diagonal=True).mean() < joint.mean()


def test_trained_rnn_gauss_stays_below_the_exact_likelihood(one_thread):
    """A model's average log-likelihood of data from p is at most p's (Gibbs' inequality), so
    the mean of log q(x) - log p(x) over test sequences must be below 0 up to its standard
    error; training must have moved the model up towards the truth for this to mean much."""
    lgssm = make_lgssm()
    test = lgssm.sample(400, 40, torch.Generator().manual_seed(100)).float()
    exact = lgssm.exact_log_likelihood(test)
    tiny = dict(h_dim=16, phi_x_dim=16, dec_dim=16, mlp_layers=1)
    untrained = train("rnn_gauss", lgssm, 0, 32, 40, 1e-2, seed=0, model_kwargs=tiny)
    trained = train("rnn_gauss", lgssm, 40, 32, 40, 1e-2, seed=0, model_kwargs=tiny)
    with torch.no_grad():
        before = estimators.elbo(untrained.eval(), test).per_sequence.double()
        after = estimators.elbo(trained.eval(), test).per_sequence.double()
    gap = after - exact
    assert gap.mean() < 3 * gap.std() / math.sqrt(len(gap))
    assert after.mean() > before.mean() + 50  # nats per sequence: training did something
