"""What the VRNN (model.py) and the SRNN (srnn.py) share: the per-step terms they return,
the checks of their settings, the output head of a frame and its density over all steps, the
LSTM cell and the row helpers. Both models import this file and neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .autoregressive import OUTPUT_KINDS, autoregressive_head
from .distributions import OBSERVATIONS, output_head

State = tuple[torch.Tensor, torch.Tensor]  # the LSTM's (h, c), each (B, h_dim)


@dataclass
class StepTerms:
    """Per-step log-density terms, each (B, T) in nats (or (B,) for one ``VRNN.step``),
    exactly 0 at padded steps.

    ``kl`` is the analytic KL(q || p) at each step; ``log_pz`` and ``log_qz`` are the prior and
    posterior log-densities of the sampled z (what importance weights need). For the rnn_*
    variants the three latent terms are 0 and ``log_px`` is the exact log-likelihood.
    """

    log_px: torch.Tensor
    kl: torch.Tensor
    log_pz: torch.Tensor
    log_qz: torch.Tensor
    kl_per_dim: torch.Tensor | None  # (B, T, z_dim), for free bits; None for rnn_*
    final_state: State

    @property
    def log_weight(self) -> torch.Tensor:
        """log p(x_t | z_<=t, x_<t) + log p(z_t | ...) - log q(z_t | ...) per step."""
        return self.log_px + self.log_pz - self.log_qz


def check_settings(observation: str, output: str, init: str) -> None:
    """ValueError naming the key when a setting both models take is not one of its values."""
    if observation not in OBSERVATIONS:
        raise ValueError(f"observation: '{observation}' is not one of {OBSERVATIONS}")
    if output not in OUTPUT_KINDS:
        raise ValueError(f"model.output: '{output}' is not one of {', '.join(OUTPUT_KINDS)}")
    if init not in ("paper", "torch"):
        raise ValueError(f"model.init: '{init}' is not 'paper' or 'torch'")


def frame_output(
    output: str,
    observation: str,
    dec_dim: int,
    x_dim: int,
    n_components: int,
    min_std: float,
    ar_hidden: int | None,
) -> nn.Module:
    """The density of a frame given the decoder's features: the paper's factorised head
    (distributions.py) or a chain of conditionals within the frame (autoregressive.py)."""
    if output == "autoregressive":
        hidden = ar_hidden or dec_dim
        return autoregressive_head(observation, dec_dim, x_dim, n_components, min_std, hidden)
    return output_head(observation, dec_dim, x_dim, n_components, min_std)


class DecodedDensity:
    """``_log_px``: the decoder and the output density over every step, for a model with
    ``decoder``, ``output`` and ``compile`` attributes (and ``_compiled_log_px = None``)."""

    def _log_px(self, decoder_in: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log p(x_t | ...) of every step: the decoder and the output density, the largest
        per-frame work after the loop; torch.compile fuses its elementwise passes when
        ``compile`` is on."""
        if self.compile:
            if self._compiled_log_px is None:
                self._compiled_log_px = torch.compile(decode_log_prob)
            decode = self._compiled_log_px
        else:
            decode = decode_log_prob
        rows = x.shape[0] * x.shape[1]
        if torch.is_grad_enabled() or rows <= SCORING_ROWS:
            return decode(self.decoder, self.output, decoder_in, x)
        # scoring many rows (IWAE's K x B): in slices whose per-component tensors stay in
        # cache, as one ELBO batch's do, instead of one pass over K times the memory
        chunk = max(1, SCORING_ROWS // x.shape[1])
        return torch.cat(
            [
                decode(self.decoder, self.output, d, xc)
                for d, xc in zip(decoder_in.split(chunk), x.split(chunk), strict=True)
            ]
        )


def lstm_cell(gates: torch.Tensor, c: torch.Tensor) -> State:
    """The LSTM cell's update from its pre-activation ``gates`` (torch's i, f, g, o order) and
    c_{t-1}: the new (h, c). The fused loop and ``recurrence`` both use it."""
    i, f, g, o = gates.chunk(4, dim=-1)
    c = torch.addcmul(torch.sigmoid(i) * torch.tanh(g), torch.sigmoid(f), c)
    return torch.sigmoid(o) * torch.tanh(c), c


# rows (batch x steps) per slice of the decoder and output density when scoring without
# gradients: a slice's (rows, x_dim, K) tensors stay in cache
SCORING_ROWS = 2048


def decode_log_prob(decoder: nn.Module, output: nn.Module, decoder_in, x) -> torch.Tensor:
    return output(decoder(decoder_in)).log_prob(x.float())


def repeat_rows(t: torch.Tensor, n: int, dim: int = 0) -> torch.Tensor:
    """n copies of a batch along ``dim`` (rows k * B + b); the batch itself when n is 1."""
    if n == 1:
        return t
    return t.repeat(*(n if d == dim else 1 for d in range(t.dim())))


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype matmuls run in here: the autocast dtype when autocast is on, else x's."""
    device = x.device.type
    if torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return x.dtype


def masked_terms(terms: StepTerms, mask: torch.Tensor) -> StepTerms:
    """Zero every term at padded steps (where, not multiply: padding may hold inf/nan)."""
    zero = torch.zeros((), device=mask.device)

    def keep(t):
        return torch.where(mask, t, zero)

    return StepTerms(
        log_px=keep(terms.log_px),
        kl=keep(terms.kl),
        log_pz=keep(terms.log_pz),
        log_qz=keep(terms.log_qz),
        kl_per_dim=None
        if terms.kl_per_dim is None
        else torch.where(mask.unsqueeze(-1), terms.kl_per_dim, zero),
        final_state=terms.final_state,
    )
