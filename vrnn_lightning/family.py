"""The model a variant name makes: the VRNN family (model.py) or SRNN (srnn.py), from the
same ``model.*`` keys."""

from __future__ import annotations

from .model import VRNN
from .srnn import SRNN
from .variant import Variant


def build_model(variant: str = "vrnn_gmm", **kwargs) -> VRNN | SRNN:
    """The nn.Module of ``variant`` with the ``model.*`` settings (and observation, x_dim)."""
    if Variant.parse(variant).smoothing:
        return SRNN(variant, **kwargs)
    return VRNN(variant, **kwargs)
