"""The model variants of the paper's Table 1, parsed once from their names.

    rnn_gauss, rnn_gmm          no latent variable: an LSTM with a Gaussian / GMM output
    vrnn_gauss, vrnn_gmm        the VRNN, with the learned conditional prior p(z_t | h_{t-1})
    vrnn_i_gauss, vrnn_i_gmm    the VRNN-I: a standard N(0, I) prior, independent across time

and later work on the same benchmarks (LATER_VARIANTS; not in the paper's Table 1):

    srnn_gauss, srnn_gmm        SRNN (Fraccaro et al. 2016): a deterministic LSTM, a state-space
                                latent chain p(z_t | z_{t-1}, d_t), a smoothing posterior

No torch here: configs, sweeps and reports read the names without loading the model.
"""

from __future__ import annotations

from dataclasses import dataclass

VARIANTS = ("rnn_gauss", "rnn_gmm", "vrnn_gauss", "vrnn_gmm", "vrnn_i_gauss", "vrnn_i_gmm")
LATER_VARIANTS = ("srnn_gauss", "srnn_gmm")
ALL_VARIANTS = VARIANTS + LATER_VARIANTS  # every name model.variant takes
LATENTS = {"rnn": "none", "vrnn": "learned_prior", "vrnn_i": "standard_prior", "srnn": "smoothing"}
OUTPUTS = ("gauss", "gmm")


@dataclass(frozen=True)
class Variant:
    """``latent``: "none", "learned_prior", "standard_prior" or "smoothing" (SRNN: a learned
    prior p(z_t | z_{t-1}, d_t) and a smoothing posterior); ``output``: "gauss" (one
    component) or "gmm" (a mixture). What an output component is (a Gaussian over a frame, or
    a pen step's Bernoulli and bivariate Gaussian) follows from the observation kind."""

    latent: str
    output: str

    @classmethod
    def parse(cls, name: str) -> Variant:
        prefix, _, output = name.rpartition("_")
        if name not in ALL_VARIANTS:
            raise ValueError(
                f"model.variant: '{name}' is not a variant; valid: {', '.join(ALL_VARIANTS)}"
            )
        return cls(LATENTS[prefix], output)

    @property
    def name(self) -> str:
        prefix = {latent: prefix for prefix, latent in LATENTS.items()}[self.latent]
        return f"{prefix}_{self.output}"

    @property
    def has_latent(self) -> bool:
        return self.latent != "none"

    @property
    def learned_prior(self) -> bool:
        return self.latent in ("learned_prior", "smoothing")

    @property
    def smoothing(self) -> bool:
        """SRNN: the posterior of z_t reads the whole sequence (a backward RNN)."""
        return self.latent == "smoothing"

    @property
    def mixture(self) -> bool:
        return self.output == "gmm"

    def __str__(self) -> str:
        return self.name
