"""Data: the frame store, the DataModule, and one named DataModule per corpus.

    from vrnn_lightning.data import TIMIT
    dm = TIMIT(root="/data/timit", batch_size=64)   # any data.* key as a keyword

Each named class is a FramesDataModule with ``data.dataset`` preset.
"""

from __future__ import annotations

from vrnn_lightning.data.datamodule import FramesDataModule
from vrnn_lightning.data.store import FrameStore


class TIMIT(FramesDataModule):
    DATASET = "timit"


class Blizzard(FramesDataModule):
    DATASET = "blizzard"


class Onomatopoeia(FramesDataModule):
    DATASET = "onomatopoeia"


class Accent(FramesDataModule):
    DATASET = "accent"


class IAMOnDB(FramesDataModule):
    DATASET = "iamondb"


class AudioFolder(FramesDataModule):
    DATASET = "audio_folder"


class GWOnline(FramesDataModule):
    DATASET = "gw_online"


class SyntheticSpeech(FramesDataModule):
    DATASET = "synthetic_speech"


class SyntheticHandwriting(FramesDataModule):
    DATASET = "synthetic_handwriting"


__all__ = [
    "FrameStore",
    "FramesDataModule",
    "TIMIT",
    "Blizzard",
    "Onomatopoeia",
    "Accent",
    "IAMOnDB",
    "AudioFolder",
    "GWOnline",
    "SyntheticSpeech",
    "SyntheticHandwriting",
]
