"""Data: the frame store, the DataModule, and one named DataModule per corpus.

    from vrnn_lightning.data import TIMIT
    dm = TIMIT(root="/data/timit", batch_size=64)   # any data.* key as a keyword

The names load on first use (PEP 562): the corpus readers and the store need no Lightning,
and a command's ``--help`` answers without importing it.
"""

from __future__ import annotations

import importlib

_WHERE = {
    "FrameStore": "vrnn_lightning.data.store",
    "FramesDataModule": "vrnn_lightning.data.datamodule",
}
__all__ = [
    "FrameStore",
    "FramesDataModule",
    "TIMIT",
    "Blizzard",
    "Onomatopoeia",
    "Accent",
    "IAMOnDB",
    "AudioFolder",
    "FSDD",
    "GWOnline",
    "SyntheticSpeech",
    "SyntheticHandwriting",
]


def __getattr__(name: str):
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(_WHERE.get(name, "vrnn_lightning.data.named"))
    return getattr(module, name)
