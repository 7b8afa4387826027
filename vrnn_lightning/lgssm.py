"""A linear-Gaussian state-space model (LGSSM): a known truth to check models and estimators.

    z_1 ~ N(0, P_1),  z_t = A z_{t-1} + w_t,  w_t ~ N(0, Q)
    x_t = C z_t + v_t,  v_t ~ N(0, R)

Its exact log-likelihood is the log-density of the joint Gaussian of all T * d observations
(covariance built from the model, torch's MultivariateNormal); a Kalman filter gives the same
number and also the best any diagonal-Gaussian predictive p(x_t | x_<t) can do. The
benchmark bench/bench_lgssm.py and the tests train VRNNs on its samples and score them
against that number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.distributions import MultivariateNormal

from .family import model_from_config
from .model import VRNN

# the widths bench/bench_lgssm.py trains with
MODEL = dict(h_dim=64, z_dim=4, phi_x_dim=32, phi_z_dim=32, enc_dim=32, prior_dim=32,
             dec_dim=32, mlp_layers=2)  # fmt: skip


@dataclass
class LGSSM:
    A: torch.Tensor  # (k, k)
    C: torch.Tensor  # (d, k)
    Q: torch.Tensor  # (k, k) process noise covariance
    R: torch.Tensor  # (d, d) observation noise covariance
    P1: torch.Tensor  # (k, k) covariance of z_1

    @property
    def x_dim(self) -> int:
        return self.C.shape[0]

    def sample(self, n: int, steps: int, generator: torch.Generator) -> torch.Tensor:
        """(n, steps, d) sequences, float64."""
        k = self.A.shape[0]

        def noise(cov, *shape):
            eps = torch.randn(*shape, cov.shape[0], generator=generator, dtype=torch.float64)
            return eps @ torch.linalg.cholesky(cov).T

        z = noise(self.P1, n)
        xs = []
        for t in range(steps):
            if t > 0:
                z = z @ self.A.T + noise(self.Q, n)
            xs.append(z @ self.C.T + noise(self.R, n))
        assert z.shape == (n, k)
        return torch.stack(xs, dim=1)

    def joint_covariance(self, steps: int) -> torch.Tensor:
        """Cov of (x_1, ..., x_T) flattened time-major: (T*d, T*d).

        Cov(z_t, z_s) = A^(t-s) P_s for t >= s, with P_t = A P_{t-1} A^T + Q the marginal
        covariance; then Cov(x_t, x_s) = C Cov(z_t, z_s) C^T + [t == s] R.
        """
        d = self.x_dim
        marginals = [self.P1]
        for _ in range(steps - 1):
            marginals.append(self.A @ marginals[-1] @ self.A.T + self.Q)
        cov = torch.zeros(steps * d, steps * d, dtype=torch.float64)
        for s in range(steps):
            cross = marginals[s]  # Cov(z_t, z_s), starting at t = s
            for t in range(s, steps):
                block = self.C @ cross @ self.C.T
                if t == s:
                    block = block + self.R
                cov[t * d : (t + 1) * d, s * d : (s + 1) * d] = block
                cov[s * d : (s + 1) * d, t * d : (t + 1) * d] = block.T
                cross = self.A @ cross
        return cov

    def exact_log_likelihood(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x_1..T) per sequence (n,), from the joint Gaussian: no recursion involved."""
        n, steps, d = x.shape
        cov = self.joint_covariance(steps)
        joint = MultivariateNormal(torch.zeros(steps * d, dtype=torch.float64), cov)
        return joint.log_prob(x.double().reshape(n, steps * d))

    def kalman_log_likelihood(self, x: torch.Tensor, diagonal: bool = False) -> torch.Tensor:
        """sum_t log p(x_t | x_<t) per sequence (n,), by the Kalman filter.

        ``diagonal``: score x_t under the predictive's mean and only the diagonal of its
        covariance, the best a diagonal-Gaussian output can do (the expected log-density of a
        Gaussian is maximised over diagonal Gaussians by its own mean and variances).
        """
        x = x.double()
        n, steps, _ = x.shape
        k = self.A.shape[0]
        m = torch.zeros(n, k, dtype=torch.float64)  # predictive mean of z_t given x_<t
        P = self.P1  # its covariance (the same for every sequence)
        total = torch.zeros(n, dtype=torch.float64)
        for t in range(steps):
            if t > 0:
                m, P = m @ self.A.T, self.A @ P @ self.A.T + self.Q
            S = self.C @ P @ self.C.T + self.R  # predictive covariance of x_t
            mean = m @ self.C.T
            scored = torch.diag(torch.diagonal(S)) if diagonal else S
            total += MultivariateNormal(mean, scored).log_prob(x[:, t])
            # update with x_t
            gain = P @ self.C.T @ torch.linalg.inv(S)
            m = m + (x[:, t] - mean) @ gain.T
            P = P - gain @ self.C @ P
        return total

    def bootstrap_step(self, x: torch.Tensor, n_particles: int, generator: torch.Generator):
        """The bootstrap particle filter's step for x (B, T, d) with K = ``n_particles``:
        z_t drawn from its transition (z_1 from N(0, P_1)), weighted by p(x_t | z_t). For
        ``smc.particle_filter`` with the state (z,), rows k * B + b; float64."""
        x = x.double().repeat(n_particles, 1, 1)
        observation = MultivariateNormal(torch.zeros(self.x_dim, dtype=torch.float64), self.R)
        chol_p1, chol_q = torch.linalg.cholesky(self.P1), torch.linalg.cholesky(self.Q)

        def step(t, state):
            (z,) = state
            eps = torch.randn(z.shape, generator=generator, dtype=torch.float64)
            z = eps @ chol_p1.T if t == 0 else z @ self.A.T + eps @ chol_q.T
            return observation.log_prob(x[:, t] - z @ self.C.T), (z,)

        initial = (torch.zeros(x.shape[0], self.A.shape[0], dtype=torch.float64),)
        return step, initial


def make_lgssm(latent: int = 4, x_dim: int = 6, seed: int = 0, obs_std: float = 0.3) -> LGSSM:
    """Rotation blocks of 0.15 and 0.35 rad per step, decay 0.95; C random with unit-norm
    rows; Q sized so the stationary latent variance is about 1; P_1 stationary."""
    g = torch.Generator().manual_seed(seed)
    angles, decay = torch.linspace(0.15, 0.35, latent // 2), 0.95
    A = torch.zeros(latent, latent, dtype=torch.float64)
    for i, a in enumerate(angles.tolist()):
        c, s = math.cos(a), math.sin(a)
        A[2 * i : 2 * i + 2, 2 * i : 2 * i + 2] = decay * torch.tensor([[c, -s], [s, c]])
    Q = (1 - decay**2) * torch.eye(latent, dtype=torch.float64)  # stationary cov = I
    C = torch.randn(x_dim, latent, generator=g, dtype=torch.float64)
    C = C / C.norm(dim=1, keepdim=True)
    R = obs_std**2 * torch.eye(x_dim, dtype=torch.float64)
    return LGSSM(A=A, C=C, Q=Q, R=R, P1=torch.eye(latent, dtype=torch.float64))


def train(
    variant: str,
    lgssm: LGSSM,
    steps: int,
    batch: int,
    seq_len: int,
    lr: float,
    seed: int,
    model_kwargs: dict = MODEL,
) -> VRNN:
    """Adam on the negative ELBO per sequence, a fresh batch of LGSSM sequences per step;
    the same data stream (seed) for every variant."""
    torch.manual_seed(seed)
    # a Gaussian output: the LGSSM's x_t is real-valued, as a frame of audio samples
    model = model_from_config({"variant": variant, **model_kwargs}, "audio", lgssm.x_dim)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    data = torch.Generator().manual_seed(seed + 1)
    for _ in range(steps):
        x = lgssm.sample(batch, seq_len, data).float()
        terms = model(x)
        loss = -(terms.log_px - terms.kl).sum(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
    return model
