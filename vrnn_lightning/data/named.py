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
    """GW online handwriting (page folders of word files): ``GWOnline()`` downloads it on
    first use into ``<cache_dir>/downloads/``; ``GWOnline(root=...)`` reads your copy."""

    DATASET = "gw_online"
    DEFAULTS = {"download": "gw_online"}  # used while root is unset


class FSDD(FramesDataModule):
    """The Free Spoken Digit Dataset (a folder of ``<digit>_<speaker>_<n>.wav`` at 8 kHz),
    split by speaker as conf/fsdd.yaml: ``FSDD()`` downloads v1.0.10 on first use into
    ``<cache_dir>/downloads/``, ``FSDD(root="free-spoken-digit-dataset/recordings")`` reads
    your copy."""

    DATASET = "audio_folder"
    DEFAULTS = {
        "download": "fsdd",  # used while root is unset
        "speaker_pattern": r"^\d+_([a-z]+)_",
        "sample_rate": 8000,
        "frame_size": 200,
        "eval_full_sequences": True,
    }


class SyntheticSpeech(FramesDataModule):
    DATASET = "synthetic_speech"


class SyntheticHandwriting(FramesDataModule):
    DATASET = "synthetic_handwriting"
