"""A naive reference VRNN: every network inside the per-step loop.

This is the common style of public VRNN implementations: phi_x, the encoder, the prior, the
decoder and the likelihood are all evaluated one step at a time. It reads the parameters of
a ``vrnn_lightning.model.VRNN`` so that the two compute exactly the same function with the
same FLOPs; the benchmarks time them side by side and the tests check they agree.
"""

from __future__ import annotations

import torch
from torch.distributions import Normal, kl_divergence

from vrnn_lightning.model import VRNN


def naive_step_terms(
    model: VRNN, x: torch.Tensor, noise: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(log_px, kl), each (B, T), computed one step at a time with an LSTMCell-style update."""
    batch, steps, _ = x.shape
    h = x.new_zeros(batch, model.h_dim)
    c = x.new_zeros(batch, model.h_dim)
    rnn = model.rnn
    if model.latent and noise is None:
        noise = torch.randn(batch, steps, model.z_dim, device=x.device)
    log_pxs, kls = [], []
    for t in range(steps):
        fx = model.phi_x(x[:, t])
        if model.latent:
            q = Normal(*model.posterior.params(model.encoder(torch.cat([fx, h], dim=-1))))
            p = model._prior(h)
            z = q.loc + q.scale * noise[:, t]
            fz = model.phi_z(z)
            x_dist = model.output(model.decoder(torch.cat([fz, h], dim=-1)))
            kls.append(kl_divergence(q, p).sum(-1))
            rnn_in = torch.cat([fx, fz], dim=-1)
        else:
            x_dist = model.output(model.decoder(h))
            kls.append(torch.zeros(batch, device=x.device))
            rnn_in = fx
        log_pxs.append(x_dist.log_prob(x[:, t].float()))
        gates = (
            rnn_in @ rnn.weight_ih_l0.t()
            + rnn.bias_ih_l0
            + h @ rnn.weight_hh_l0.t()
            + rnn.bias_hh_l0
        )
        i, f, g, o = gates.chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
    return torch.stack(log_pxs, dim=1), torch.stack(kls, dim=1)
