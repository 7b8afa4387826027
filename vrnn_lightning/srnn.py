"""SRNN (Fraccaro, Sønderby, Paquet and Winther, NeurIPS 2016, "Sequential neural models
with stochastic layers"; code: marcofraccaro/srnn) as one nn.Module beside the VRNN.

    d_t = LSTM(d_{t-1}, phi_x(x_{t-1}))                 deterministic, x_0 = 0
    p(z_t | z_{t-1}, d_t) = N(mu_p, sigma_p)            from phi_prior([z_{t-1}, d_t]), z_0 = 0
    p(x_t | z_t, d_t)                                   from phi_dec([phi_z(z_t), d_t])
    a_t = LSTM_backward(a_{t+1}, [d_t, phi_x(x_t)])     the smoothing posterior's summary
    q(z_t | z_{t-1}, a_t) = N(mu_q, sigma_q)            from phi_enc([z_{t-1}, a_t]);
                                                        res_q: mu_q = mu_p + that mean

(the original uses GRUs; LSTMs here, as the VRNN's). The posterior reads the whole sequence
through a_t, so the ELBO's gap can close where a filtering posterior's cannot; it is a valid
proposal for IWAE and SMC (it depends on the observed x only).

Speed as the VRNN's (model.py): d and a are two nn.LSTM passes over the whole sequence, and
the a- and d-parts of the encoder's and prior's first layers are computed for all steps before
the loop; the loop holds only what z_{t-1} feeds: the rest of the encoder (and, with res_q, of
the prior), the sample. The prior (without res_q), phi_z, the decoder and the densities run
over the stacked steps after it. ``step`` is the per-step form of the same model (the
readable reference; ``forward_stepwise`` chains it, and the tests hold it equal to ``forward``
and to a naive transcription of the equations); it takes d_t and a_t from ``step_inputs``
(the backward pass needs the whole sequence), which is how the particle filter runs it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Distribution, Normal, kl_divergence

from .autoregressive import zero_masked_
from .distributions import FAST, GaussianHead
from .model_parts import (
    DecodedDensity,
    StepTerms,
    check_settings,
    frame_output,
    lstm_cell,
    masked_terms,
    repeat_rows,
)
from .networks import PAPER_MAX_NORM, apply_max_norm, mlp, paper_init_
from .variant import Variant


class SRNN(DecodedDensity, nn.Module):
    def __init__(
        self,
        variant: str = "srnn_gmm",
        x_dim: int = 200,
        observation: str = "audio",
        h_dim: int = 2000,
        z_dim: int = 200,
        phi_x_dim: int = 400,
        phi_z_dim: int = 300,
        enc_dim: int = 300,
        prior_dim: int = 300,
        dec_dim: int = 400,
        mlp_layers: int = 4,
        n_components: int = 20,
        min_std: float = 1e-4,
        init: str = "paper",
        std_bias_init: float = 0.6,
        compile: bool = False,
        output: str = "independent",
        ar_hidden: int | None = None,
        res_q: bool = True,
    ):
        super().__init__()
        parsed = Variant.parse(variant)
        if not parsed.smoothing:
            raise ValueError(f"model.variant: '{variant}' is not an SRNN variant")
        check_settings(observation, output, init)
        self.variant, self.observation, self.output_kind = variant, observation, output
        self.x_dim, self.h_dim, self.z_dim = x_dim, h_dim, z_dim
        self.latent = self.learned_prior = True
        self.res_q = res_q
        k = n_components if parsed.mixture else 1

        self.phi_x = mlp(x_dim, phi_x_dim, mlp_layers)
        self.d_rnn = nn.LSTM(phi_x_dim, h_dim, batch_first=True)
        self.a_rnn = nn.LSTM(h_dim + phi_x_dim, h_dim, batch_first=True)
        self.a_rnn.in_blocks = (h_dim, phi_x_dim)  # per-input max-norm, as the VRNN's LSTM
        self.encoder = mlp((z_dim, h_dim), enc_dim, mlp_layers)  # [z_{t-1}, a_t]
        self.posterior = GaussianHead(enc_dim, z_dim, min_std)
        self.prior_net = mlp((z_dim, h_dim), prior_dim, mlp_layers)  # [z_{t-1}, d_t]
        self.prior = GaussianHead(prior_dim, z_dim, min_std)
        self.phi_z = mlp(z_dim, phi_z_dim, mlp_layers)
        self.decoder = mlp((phi_z_dim, h_dim), dec_dim, mlp_layers)  # [phi_z(z_t), d_t]
        self.output = frame_output(output, observation, dec_dim, x_dim, k, min_std, ar_hidden)
        if init == "paper":
            paper_init_(self, std_bias_init)
        zero_masked_(self)
        self.compile = compile
        self._compiled_log_px = None

    # ----------------------------------------------------------------------------------
    # What depends on x only: d_t and a_t for every step
    # ----------------------------------------------------------------------------------
    def step_inputs(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """[d_t, a_t] of every step (B, T, 2 h_dim). The backward pass starts at each
        sequence's last valid step (``mask``, valid steps first), so padding never reaches a_t
        of a valid step."""
        fx = self.phi_x(x)
        shifted = torch.cat([torch.zeros_like(fx[:, :1]), fx[:, :-1]], dim=1)  # phi_x(x_{t-1})
        d, _ = self.d_rnn(shifted)
        index = _reversal(mask, x)
        a_in = torch.cat([d, fx], dim=-1)
        a_in = a_in.gather(1, index.expand(-1, -1, a_in.shape[-1]))
        a, _ = self.a_rnn(a_in)
        a = a.gather(1, index.expand(-1, -1, a.shape[-1]))
        return torch.cat([d, a], dim=-1)

    # ----------------------------------------------------------------------------------
    # Scoring a batch of sequences (the fused form)
    # ----------------------------------------------------------------------------------
    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        n_samples: int = 1,
        noise: torch.Tensor | None = None,
        state=None,
        generator: torch.Generator | None = None,
    ) -> StepTerms:
        """Per-step terms as ``VRNN.forward``'s (K samples: rows k * B + b)."""
        if state is not None:
            raise ValueError("SRNN carries no state across windows (its posterior smooths)")
        batch, steps, _ = x.shape
        if mask is None:
            mask = torch.ones(batch, steps, dtype=torch.bool, device=x.device)
        else:
            x = torch.where(mask.unsqueeze(-1), x, torch.zeros((), dtype=x.dtype, device=x.device))
        feats = repeat_rows(self.step_inputs(x, mask), n_samples)
        d, a = feats.split(self.h_dim, dim=-1)
        if n_samples > 1:
            mask = mask.repeat(n_samples, 1)
        x = repeat_rows(x, n_samples)
        rows = x.shape[0]
        if noise is None:
            noise = torch.randn(rows, steps, self.z_dim, device=x.device, generator=generator)

        enc_in, prior_in = self.encoder[0], self.prior_net[0]
        z_dim = self.z_dim
        # the a- and d-parts of the first layers, for all steps at once, time-major
        a_part = F.linear(a, enc_in.weight[:, z_dim:], enc_in.bias).transpose(0, 1)
        w_enc_z = enc_in.weight[:, :z_dim]
        if self.res_q:
            d_part = F.linear(d, prior_in.weight[:, z_dim:], prior_in.bias).transpose(0, 1)
            w_prior_z = prior_in.weight[:, :z_dim]
        z = x.new_zeros(rows, z_dim, dtype=torch.float32)
        z_prevs, q_mus, q_stds, p_mus, p_stds = [], [], [], [], []
        for t, noise_t in enumerate(noise.unbind(1)):
            z_prevs.append(z)
            hidden = F.relu(a_part[t] + F.linear(z.to(a_part.dtype), w_enc_z))
            mu_q, std_q = self.posterior.params(self.encoder[2:](hidden))
            if self.res_q:
                hidden_p = F.relu(d_part[t] + F.linear(z.to(d_part.dtype), w_prior_z))
                mu_p, std_p = self.prior.params(self.prior_net[2:](hidden_p))
                p_mus.append(mu_p)
                p_stds.append(std_p)
                mu_q = mu_q + mu_p
            z = torch.addcmul(mu_q, std_q, noise_t)
            q_mus.append(mu_q)
            q_stds.append(std_q)

        z_prev = torch.stack(z_prevs, dim=1)
        z_all = torch.cat([z_prev[:, 1:], z.unsqueeze(1)], dim=1)  # z_t of every step
        q = Normal(torch.stack(q_mus, dim=1), torch.stack(q_stds, dim=1), **FAST)
        if self.res_q:
            p = Normal(torch.stack(p_mus, dim=1), torch.stack(p_stds, dim=1), **FAST)
        else:
            p = self.p_z(z_prev, d)
        log_px = self._log_px(torch.cat([self.phi_z(z_all), d], dim=-1), x)
        kl_per_dim = kl_divergence(q, p)
        terms = StepTerms(
            log_px=log_px,
            kl=kl_per_dim.sum(-1),
            log_pz=p.log_prob(z_all).sum(-1),
            log_qz=q.log_prob(z_all).sum(-1),
            kl_per_dim=kl_per_dim,
            final_state=(z,),
        )
        return masked_terms(terms, mask)

    # ----------------------------------------------------------------------------------
    # One step at a time (the per-step form)
    # ----------------------------------------------------------------------------------
    def initial_state(self, batch: int, device: torch.device | None = None) -> tuple:
        """z_0 = 0: the state the step carries is z_{t-1} (d and a come from step_inputs)."""
        return (torch.zeros(batch, self.z_dim, device=device),)

    def p_z(self, z_prev: torch.Tensor, d_t: torch.Tensor) -> Normal:
        """The prior p(z_t | z_{t-1}, d_t)."""
        hidden = self.prior_net(torch.cat([z_prev.to(d_t.dtype), d_t], dim=-1))
        return Normal(*self.prior.params(hidden), **FAST)

    def q_z(self, z_prev: torch.Tensor, a_t: torch.Tensor, prior: Normal | None = None) -> Normal:
        """The smoothing posterior q(z_t | z_{t-1}, a_t); with res_q its mean is the prior's
        (``prior``) plus the network's."""
        hidden = self.encoder(torch.cat([z_prev.to(a_t.dtype), a_t], dim=-1))
        mu, std = self.posterior.params(hidden)
        if self.res_q:
            mu = mu + prior.loc
        return Normal(mu, std, **FAST)

    def p_x(self, z_t: torch.Tensor, d_t: torch.Tensor) -> Distribution:
        """The output density p(x_t | z_t, d_t)."""
        return self.output(self.decoder(torch.cat([self.phi_z(z_t), d_t], dim=-1)))

    def step(
        self,
        x_t: torch.Tensor,
        state: tuple,
        noise_t: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        phi_x_t: torch.Tensor | None = None,
    ) -> tuple[StepTerms, tuple]:
        """Score x_t (B, x_dim) after ``state`` (z_{t-1},): the step's terms and (z_t,).
        ``phi_x_t`` is this step's row of ``step_inputs`` ([d_t, a_t]): required, since a_t
        reads the rest of the sequence."""
        if phi_x_t is None:
            raise ValueError("SRNN.step needs phi_x_t: step [d_t, a_t] of step_inputs(x, mask)")
        (z_prev,) = state
        d_t, a_t = phi_x_t.split(self.h_dim, dim=-1)
        p = self.p_z(z_prev, d_t)
        q = self.q_z(z_prev, a_t, p)
        if noise_t is None:
            noise_t = torch.randn(q.loc.shape, device=q.loc.device, generator=generator)
        z = q.loc + q.scale * noise_t
        kl_per_dim = kl_divergence(q, p)
        terms = StepTerms(
            log_px=self.p_x(z, d_t).log_prob(x_t.float()),
            kl=kl_per_dim.sum(-1),
            log_pz=p.log_prob(z).sum(-1),
            log_qz=q.log_prob(z).sum(-1),
            kl_per_dim=kl_per_dim,
            final_state=(z,),
        )
        return terms, (z,)

    def forward_stepwise(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        state=None,
        generator: torch.Generator | None = None,
    ) -> StepTerms:
        """What ``forward`` (one sample) computes, by ``step``."""
        if state is not None:
            raise ValueError("SRNN carries no state across windows (its posterior smooths)")
        batch, steps, _ = x.shape
        if mask is not None:
            x = torch.where(mask.unsqueeze(-1), x, torch.zeros((), dtype=x.dtype, device=x.device))
        feats = self.step_inputs(x, mask)
        state = self.initial_state(batch, x.device)
        per_step = []
        for t in range(steps):
            noise_t = None if noise is None else noise[:, t]
            terms, state = self.step(x[:, t], state, noise_t, generator, phi_x_t=feats[:, t])
            per_step.append(terms)

        def stacked(name):
            return torch.stack([getattr(terms, name) for terms in per_step], dim=1)

        terms = StepTerms(
            log_px=stacked("log_px"),
            kl=stacked("kl"),
            log_pz=stacked("log_pz"),
            log_qz=stacked("log_qz"),
            kl_per_dim=stacked("kl_per_dim"),
            final_state=state,
        )
        return terms if mask is None else masked_terms(terms, mask)

    # ----------------------------------------------------------------------------------
    # Generation: z_t from the prior, x_t from the output, d_{t+1} from x_t
    # ----------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(
        self, n: int, steps: int, primer: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """As ``VRNN.generate``: (samples, means), each (n, primer_len + steps, x_dim); after a
        primer, z_{Tp} is the smoothing posterior's over the primer and d continues from it."""
        device = next(self.parameters()).device
        zeros_in = torch.zeros(n, 1, self.d_rnn.input_size, device=device)
        samples, means = [], []
        z = torch.zeros(n, self.z_dim, device=device)
        if primer is not None:
            primer = primer.to(device).float().expand(n, -1, -1)
            (z,) = self.forward(primer).final_state
            d_in = torch.cat([zeros_in, self.phi_x(primer)], dim=1)  # x_0 = 0, x_1..x_Tp
            samples.append(primer)
            means.append(primer)
        else:
            d_in = zeros_in
        _, (h, c) = self.d_rnn(d_in)  # h: d_{t} of the first new step
        h, c = h[0], c[0]
        w_ih, w_hh = self.d_rnn.weight_ih_l0, self.d_rnn.weight_hh_l0
        b = self.d_rnn.bias_ih_l0 + self.d_rnn.bias_hh_l0
        for _ in range(steps):
            z = self.p_z(z, h).sample()
            p_x = self.p_x(z, h)
            x = p_x.sample()
            samples.append(x.unsqueeze(1))
            means.append(p_x.mean.unsqueeze(1))
            h, c = lstm_cell(F.linear(self.phi_x(x), w_ih, b) + F.linear(h, w_hh), c)
        return torch.cat(samples, dim=1), torch.cat(means, dim=1)

    def apply_max_norm(self, max_norm: float = PAPER_MAX_NORM) -> None:
        """The paper's per-column max-norm on all non-recurrent weights (after each step)."""
        apply_max_norm(self, max_norm)


def _reversal(mask: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor:
    """(B, T, 1) indices that reverse each sequence's valid steps in place (valid steps come
    first; padding stays where it is); their own inverse."""
    batch, steps = x.shape[:2]
    t = torch.arange(steps, device=x.device).expand(batch, steps)
    if mask is None:
        return (steps - 1 - t).unsqueeze(-1)
    length = mask.sum(1, keepdim=True)
    return torch.where(t < length, length - 1 - t, t).unsqueeze(-1)
