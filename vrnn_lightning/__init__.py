"""The Variational RNN (Chung et al., NeurIPS 2015) as a PyTorch Lightning application.

    import vrnn_lightning
    trained = vrnn_lightning.load_pretrained("exported/fsdd")   # a vrnn-export folder or a
    trained.model, trained.data.normalisation                   # vrnn-fit checkpoint

``python -m vrnn_lightning`` lists the commands.
"""

from __future__ import annotations

from .version import __version__

__all__ = ["__version__", "load_pretrained"]


def load_pretrained(path):
    """A trained model from a vrnn-export folder (or a vrnn-fit checkpoint), ready to score
    and generate: a ``checkpoint.Trained`` (``.model`` in eval mode on the CPU, ``.data`` with
    the normalisation, ``.config``, ``.metrics``). Never executes code from the files."""
    from .checkpoint import load_trained

    return load_trained(path)
