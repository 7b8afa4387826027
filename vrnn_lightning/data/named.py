"""One named DataModule per corpus: a FramesDataModule with ``data.dataset`` preset.

from vrnn_lightning.data import TIMIT
dm = TIMIT(root="/data/timit", batch_size=64)   # any data.* key as a keyword
"""

from __future__ import annotations

from vrnn_lightning.data.datamodule import FramesDataModule


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


class FSDD(FramesDataModule):
    """The Free Spoken Digit Dataset (a folder of ``<digit>_<speaker>_<n>.wav`` at 8 kHz),
    split by speaker as conf/fsdd.yaml: ``FSDD(root="free-spoken-digit-dataset/recordings")``."""

    DATASET = "audio_folder"
    DEFAULTS = {
        "speaker_pattern": r"^\d+_([a-z]+)_",
        "sample_rate": 8000,
        "frame_size": 200,
        "eval_full_sequences": True,
    }


class SyntheticSpeech(FramesDataModule):
    DATASET = "synthetic_speech"


class SyntheticHandwriting(FramesDataModule):
    DATASET = "synthetic_handwriting"
