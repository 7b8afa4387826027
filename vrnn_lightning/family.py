"""The model a variant name makes: the VRNN family (model.py) or SRNN (srnn.py), from the
same ``model.*`` keys. ``model_from_config`` is the one place a model is built from a config:
the LightningModule, the checkpoint loader, the linear-Gaussian benchmark and the benches."""

from __future__ import annotations

from collections.abc import Mapping

from omegaconf import DictConfig, OmegaConf

from .model import VRNN
from .srnn import SRNN
from .variant import Variant


def build_model(variant: str = "vrnn_gmm", **kwargs) -> VRNN | SRNN:
    """The nn.Module of ``variant`` with the ``model.*`` settings (and observation, x_dim)."""
    if Variant.parse(variant).smoothing:
        return SRNN(variant, **kwargs)
    return VRNN(variant, **kwargs)


def model_from_config(model: DictConfig | Mapping, observation: str, x_dim: int) -> VRNN | SRNN:
    """The model of a run config's ``model`` section for frames of ``x_dim`` values of
    ``observation`` ("audio" or "strokes": what x_t is, data/store.py)."""
    settings = OmegaConf.to_container(model) if isinstance(model, DictConfig) else dict(model)
    return build_model(observation=observation, x_dim=x_dim, **settings)
