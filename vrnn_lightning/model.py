"""The VRNN family (Chung et al. 2015) as one nn.Module; no Lightning here.

Variants (``variant``):

- ``rnn_gauss`` / ``rnn_gmm``: an LSTM over phi_x(x); p(x_t | x_<t) = dec(h_{t-1}).
- ``vrnn_gauss`` / ``vrnn_gmm``: the full VRNN with a learned conditional prior p(z_t | h_{t-1}).
- ``vrnn_i_gauss`` / ``vrnn_i_gmm``: the VRNN with a fixed N(0, I) prior, independent across
  time (no prior network); everything else unchanged.

Any variant takes either output head (``output``): ``independent``, the paper's (a frame
factorised given its context), or ``autoregressive``, a chain of conditionals within the frame
(autoregressive.py; Dai et al. 2019).

Speed comes from structure: phi_x and the x-parts of the encoder's first layer and of the
LSTM input run over the whole sequence before the loop; the prior, decoder and likelihoods
run over the stacked states after it. The loop holds only what depends on the recurrent
state: one fused matmul of h_{t-1} (LSTM recurrence and encoder), the rest of the encoder,
the sample, phi_z and the LSTM cell.

The same model also reads one step at a time, as the paper's section 3 writes it: ``p_z``
(the prior), ``q_z`` (the approximate posterior), ``p_x`` (the decoder and output density),
``recurrence`` (the LSTM) and ``step``, which chains them. Generation and the particle filter
(they act between steps) use it; ``forward_stepwise`` scores a sequence with it, and the tests
check it equal to the fused ``forward`` in values and gradients.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Distribution, Normal, kl_divergence

from .autoregressive import zero_masked_
from .distributions import FAST, GaussianHead
from .model_parts import (  # noqa: F401  (State, StepTerms, lstm_cell: the model's own names)
    DecodedDensity,
    State,
    StepTerms,
    check_settings,
    compute_dtype,
    frame_output,
    lstm_cell,
    masked_terms,
    repeat_rows,
)
from .networks import PAPER_MAX_NORM, RecurrentWeightGrad, apply_max_norm, mlp, paper_init_
from .variant import VARIANTS, Variant  # noqa: F401  (VARIANTS: the model's names)


class VRNN(DecodedDensity, nn.Module):
    def __init__(
        self,
        variant: str = "vrnn_gmm",
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
        res_q: bool = True,  # model.res_q: SRNN's alone (srnn.py); accepted, so VRNN(**cfg.model)
    ):
        super().__init__()
        parsed = Variant.parse(variant)
        if parsed.smoothing:
            raise ValueError(
                f"model.variant: {variant} is an SRNN: vrnn_lightning.srnn.SRNN, or "
                "vrnn_lightning.family.build_model for any variant"
            )
        check_settings(observation, output, init)
        self.variant, self.observation = variant, observation
        self.x_dim, self.h_dim, self.z_dim = x_dim, h_dim, z_dim
        self.latent = parsed.has_latent
        self.learned_prior = parsed.learned_prior
        k = n_components if parsed.mixture else 1

        self.phi_x = mlp(x_dim, phi_x_dim, mlp_layers)
        if self.latent:
            self.phi_z = mlp(z_dim, phi_z_dim, mlp_layers)
            self.encoder = mlp((phi_x_dim, h_dim), enc_dim, mlp_layers)
            self.posterior = GaussianHead(enc_dim, z_dim, min_std)
            if self.learned_prior:
                self.prior_net = mlp(h_dim, prior_dim, mlp_layers)
                self.prior = GaussianHead(prior_dim, z_dim, min_std)
            self.decoder = mlp((phi_z_dim, h_dim), dec_dim, mlp_layers)
            rnn_inputs = (phi_x_dim, phi_z_dim)
        else:
            self.decoder = mlp(h_dim, dec_dim, mlp_layers)
            rnn_inputs = (phi_x_dim,)
        # the output head keeps the name "output" (its weights' keys in every checkpoint)
        self.output_kind = output
        self.output = frame_output(output, observation, dec_dim, x_dim, k, min_std, ar_hidden)
        self.rnn = nn.LSTM(sum(rnn_inputs), h_dim, batch_first=True)
        self.rnn.in_blocks = rnn_inputs  # per-input max-norm, as the original's one W per parent
        if init == "paper":
            paper_init_(self, std_bias_init)
        zero_masked_(self)  # the autoregressive head's masked-out weights: 0, whatever the init
        self.compile = compile
        self._compiled_log_px = None  # made on first use: a compiled function does not pickle

    # ----------------------------------------------------------------------------------
    # Scoring a batch of sequences
    # ----------------------------------------------------------------------------------
    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        n_samples: int = 1,
        noise: torch.Tensor | None = None,
        state: State | None = None,
        generator: torch.Generator | None = None,
    ) -> StepTerms:
        """Per-step terms for x (B, T, x_dim) under ``n_samples`` posterior samples each.

        With n_samples = K the batch is scored K times at once: the returned terms are
        (K * B, T), sample-major (row k * B + b). ``noise`` (K * B, T, z_dim) fixes the
        reparameterisation noise, else it is drawn from ``generator`` (default: torch's global
        one); ``state`` is an initial (h, c) for truncated BPTT.
        """
        batch, steps, _ = x.shape
        if mask is None:
            mask = torch.ones(batch, steps, dtype=torch.bool, device=x.device)
        else:
            # padded steps never reach a network, whatever the padding holds
            x = torch.where(mask.unsqueeze(-1), x, torch.zeros((), dtype=x.dtype, device=x.device))
        if n_samples > 1:
            mask = mask.repeat(n_samples, 1)
            if state is not None:
                state = (state[0].repeat(n_samples, 1), state[1].repeat(n_samples, 1))
        if self.latent:
            if noise is None:
                shape = (n_samples * batch, steps, self.z_dim)
                noise = torch.randn(shape, device=x.device, generator=generator)
            terms = self._vrnn_terms(x, noise, state, n_samples)
        else:  # no latent variable: the K samples are the same; score them all the same
            terms = self._rnn_terms(repeat_rows(x, n_samples), state)
        return masked_terms(terms, mask)

    def _rnn_terms(self, x: torch.Tensor, state: State | None) -> StepTerms:
        fx = self.phi_x(x)
        if state is not None:
            state = (state[0].unsqueeze(0).contiguous(), state[1].unsqueeze(0).contiguous())
        h, (h_last, c_last) = self.rnn(fx, state)
        h0 = torch.zeros_like(h[:, :1]) if state is None else state[0].transpose(0, 1)
        h_prev = torch.cat([h0, h[:, :-1]], dim=1)  # x_t is predicted from h_{t-1}
        log_px = self._log_px(h_prev, x)
        zero = torch.zeros_like(log_px)
        return StepTerms(log_px, zero, zero, zero, None, (h_last[0], c_last[0]))

    def _vrnn_terms(self, x: torch.Tensor, noise: torch.Tensor, state: State | None, n_samples):
        fx = self.phi_x(x)  # once per sequence, whatever the number of samples
        enc_in, phi_x_dim = self.encoder[0], fx.shape[-1]
        w_ih, w_hh = self.rnn.weight_ih_l0, self.rnn.weight_hh_l0
        n_gates = w_hh.shape[0]
        # One matmul of h_{t-1} serves both the LSTM recurrence and the encoder: its rows are
        # [LSTM gates | encoder's first layer], and so are those of the x-only part.
        w_h = torch.cat([w_hh, enc_in.weight[:, phi_x_dim:]], dim=0)
        w_x = torch.cat([w_ih[:, :phi_x_dim], enc_in.weight[:, :phi_x_dim]], dim=0)
        b_x = torch.cat([self.rnn.bias_ih_l0 + self.rnn.bias_hh_l0, enc_in.bias])
        w_ih_z = w_ih[:, phi_x_dim:]
        x = repeat_rows(x, n_samples)  # K samples of each sequence: rows k * B + b
        batch, steps, _ = x.shape
        h, c = state if state is not None else (x.new_zeros(batch, self.h_dim),) * 2
        c = c.float()

        # The loop's two recurrent products use detached weights (cast once to the autocast
        # dtype); their weight gradients come after the loop, over all steps at once, through
        # the zeros ``probes`` that receive d loss / d(h_{t-1} W^T).
        dtype = compute_dtype(x)
        w_h_t, w_ih_z_t = w_h.detach().t().to(dtype), w_ih_z.detach().t().to(dtype)
        h_prevs, q_mus, q_stds, zs, fzs = [], [], [], [], []
        # the weight-gradient function gets detached aliases of h_{t-1} and fz_t (see its
        # docstring: tensors with a graph on its ctx would leak every step's activations)
        h_prevs_data, fzs_data = [], []
        probes = RecurrentWeightGrad.apply(
            w_h, w_ih_z, h_prevs_data, fzs_data, (steps, batch, w_h.shape[0]), dtype
        )
        # Everything that depends on x only, for all steps at once, time-major.
        x_part = F.linear(fx, w_x, b_x).transpose(0, 1)  # (T, B, 4 h_dim + enc_dim)
        if torch.is_grad_enabled():
            x_steps = (repeat_rows(x_part, n_samples, dim=1) + probes).unbind(0)
        else:  # scoring: each step's K copies when it comes, not all steps' (the largest
            # tensor of a pass: K x (4 h_dim + enc_dim) floats per step and sequence)
            x_steps = (repeat_rows(x_t, n_samples) for x_t in x_part.unbind(0))
        for x_t, noise_t in zip(x_steps, noise.unbind(1), strict=True):
            h_proj = torch.addmm(x_t, h, w_h_t)
            hidden = F.relu(h_proj[:, n_gates:])
            mu_q, std_q = self.posterior.params(self.encoder[2:](hidden))
            z = torch.addcmul(mu_q, std_q, noise_t)
            fz = self.phi_z(z)
            gates = torch.addmm(h_proj[:, :n_gates], fz, w_ih_z_t).float()
            h_prevs.append(h)
            h_prevs_data.append(h.detach())
            h, c = lstm_cell(gates, c)
            q_mus.append(mu_q)
            q_stds.append(std_q)
            zs.append(z)
            fzs.append(fz)
            fzs_data.append(fz.detach())

        # Everything that depends on h_{t-1} and z_t but feeds nothing back, for all steps.
        h_prev = torch.stack(h_prevs, dim=1)
        z = torch.stack(zs, dim=1)
        fz = torch.stack(fzs, dim=1)
        q = Normal(torch.stack(q_mus, dim=1), torch.stack(q_stds, dim=1), **FAST)
        p = self.p_z(h_prev)
        log_px = self._log_px(torch.cat([fz, h_prev], dim=-1), x)
        kl_per_dim = kl_divergence(q, p)
        return StepTerms(
            log_px=log_px,
            kl=kl_per_dim.sum(-1),
            log_pz=p.log_prob(z).sum(-1),
            log_qz=q.log_prob(z).sum(-1),
            kl_per_dim=kl_per_dim,
            final_state=(h, c),
        )

    # ----------------------------------------------------------------------------------
    # One step at a time, as the paper writes it (section 3)
    # ----------------------------------------------------------------------------------
    def initial_state(self, batch: int, device: torch.device | None = None) -> State:
        """h_0 = c_0 = 0, as the original code starts every sequence."""
        h = torch.zeros(batch, self.h_dim, device=device)
        return h, torch.zeros_like(h)

    def step_inputs(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """What ``step`` may take as ``phi_x_t`` for every step at once: phi_x(x) (B, T, ...)."""
        return self.phi_x(x)

    def p_z(self, h_prev: torch.Tensor) -> Normal:
        """The prior p(z_t | x_<t, z_<t) = N(mu_0, sigma_0) from phi_prior(h_{t-1}), per
        dimension; N(0, I) for the vrnn_i_* variants."""
        if self.learned_prior:
            return Normal(*self.prior.params(self.prior_net(h_prev)), **FAST)
        zeros = h_prev.new_zeros(*h_prev.shape[:-1], self.z_dim, dtype=torch.float32)
        return Normal(zeros, torch.ones_like(zeros), **FAST)

    def q_z(self, phi_x_t: torch.Tensor, h_prev: torch.Tensor) -> Normal:
        """The approximate posterior q(z_t | x_<=t, z_<t) = N(mu_z, sigma_z) from
        phi_enc(phi_x(x_t), h_{t-1}), per dimension."""
        hidden = self.encoder(torch.cat([phi_x_t, h_prev], dim=-1))
        return Normal(*self.posterior.params(hidden), **FAST)

    def p_x(self, phi_z_t: torch.Tensor | None, h_prev: torch.Tensor) -> Distribution:
        """The output density p(x_t | z_<=t, x_<t) from phi_dec(phi_z(z_t), h_{t-1}); from
        h_{t-1} alone for the rnn_* variants (``phi_z_t`` None)."""
        hidden = h_prev if phi_z_t is None else torch.cat([phi_z_t, h_prev], dim=-1)
        return self.output(self.decoder(hidden))

    def recurrence(
        self, phi_x_t: torch.Tensor, phi_z_t: torch.Tensor | None, state: State
    ) -> State:
        """h_t = LSTM(phi_x(x_t), phi_z(z_t), h_{t-1}): the new (h, c)."""
        h, c = state
        rnn_in = phi_x_t if phi_z_t is None else torch.cat([phi_x_t, phi_z_t], dim=-1)
        gates = F.linear(rnn_in, self.rnn.weight_ih_l0, self.rnn.bias_ih_l0) + F.linear(
            h, self.rnn.weight_hh_l0, self.rnn.bias_hh_l0
        )
        return lstm_cell(gates, c)

    def step(
        self,
        x_t: torch.Tensor,
        state: State,
        noise_t: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        phi_x_t: torch.Tensor | None = None,
    ) -> tuple[StepTerms, State]:
        """Score x_t (B, x_dim) after ``state`` (the (h, c) after x_<t): the terms of this
        step, each (B,), and the state after x_t.

        z_t = mu_z + sigma_z * noise_t (``noise_t`` (B, z_dim), else drawn from ``generator``).
        ``phi_x_t`` may be given when phi_x(x) was computed for the whole sequence at once.
        """
        h_prev = state[0]
        if phi_x_t is None:
            phi_x_t = self.phi_x(x_t)
        if not self.latent:
            log_px = self.p_x(None, h_prev).log_prob(x_t.float())
            zero = torch.zeros_like(log_px)
            new_state = self.recurrence(phi_x_t, None, state)
            return StepTerms(log_px, zero, zero, zero, None, new_state), new_state
        q, p = self.q_z(phi_x_t, h_prev), self.p_z(h_prev)
        if noise_t is None:
            noise_t = torch.randn(q.loc.shape, device=q.loc.device, generator=generator)
        z = q.loc + q.scale * noise_t  # reparameterised: gradients reach q's parameters
        phi_z_t = self.phi_z(z)
        kl_per_dim = kl_divergence(q, p)
        new_state = self.recurrence(phi_x_t, phi_z_t, state)
        terms = StepTerms(
            log_px=self.p_x(phi_z_t, h_prev).log_prob(x_t.float()),
            kl=kl_per_dim.sum(-1),
            log_pz=p.log_prob(z).sum(-1),
            log_qz=q.log_prob(z).sum(-1),
            kl_per_dim=kl_per_dim,
            final_state=new_state,
        )
        return terms, new_state

    def forward_stepwise(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        state: State | None = None,
        generator: torch.Generator | None = None,
    ) -> StepTerms:
        """What ``forward`` (one sample) computes, by ``step`` with every network inside the
        loop: the readable reference (and the naive baseline of bench/bench_training.py)."""
        batch, steps, _ = x.shape
        if mask is not None:
            x = torch.where(mask.unsqueeze(-1), x, torch.zeros((), dtype=x.dtype, device=x.device))
        if state is None:
            state = self.initial_state(batch, x.device)
        per_step = []
        for t in range(steps):
            noise_t = None if noise is None else noise[:, t]
            terms, state = self.step(x[:, t], state, noise_t, generator)
            per_step.append(terms)

        def stacked(name):
            return torch.stack([getattr(terms, name) for terms in per_step], dim=1)

        terms = StepTerms(
            log_px=stacked("log_px"),
            kl=stacked("kl"),
            log_pz=stacked("log_pz"),
            log_qz=stacked("log_qz"),
            kl_per_dim=stacked("kl_per_dim") if self.latent else None,
            final_state=state,
        )
        return terms if mask is None else masked_terms(terms, mask)

    # ----------------------------------------------------------------------------------
    # Generation
    # ----------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(
        self, n: int, steps: int, primer: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample ``n`` sequences of ``steps`` new steps, optionally after a primer.

        Returns (samples, means), each (n, primer_len + steps, x_dim). As in the original
        sampler, the *sampled* x_t is fed back; ``means`` holds the decoder mean of each
        generated step (what the paper saved as audio). The primer (n or 1, Tp, x_dim) is
        copied unchanged into both outputs' prefix; the state after it comes from the
        posterior (VRNN) or the LSTM (RNN) run over it.
        """
        device = next(self.parameters()).device
        state = self.initial_state(n, device)
        samples, means = [], []
        if primer is not None:
            primer = primer.to(device).float().expand(n, -1, -1)
            state = self.forward(primer).final_state
            samples.append(primer)
            means.append(primer)
        for _ in range(steps):
            h_prev = state[0]
            # z_t from the prior, x_t from the output density, then the recurrence
            phi_z_t = self.phi_z(self.p_z(h_prev).sample()) if self.latent else None
            p_x = self.p_x(phi_z_t, h_prev)
            x = p_x.sample()
            samples.append(x.unsqueeze(1))
            means.append(p_x.mean.unsqueeze(1))
            state = self.recurrence(self.phi_x(x), phi_z_t, state)
        return torch.cat(samples, dim=1), torch.cat(means, dim=1)

    def apply_max_norm(self, max_norm: float = PAPER_MAX_NORM) -> None:
        """The paper's per-column max-norm on all non-recurrent weights (after each step)."""
        apply_max_norm(self, max_norm)
