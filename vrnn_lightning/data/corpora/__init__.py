"""Corpora: where each dataset's files are, how each file is read, and its split rule.

Each corpus is one small module exposing

    OBSERVATION: str                           # what x_t is: "audio" or "strokes"
    def find_sources(cfg: DataConfig) -> dict[str, list[Source]]
        # split name ("train", "valid", "test") -> its sources, in a deterministic order;
        # raises CorpusError when the root is missing or holds nothing usable
    def read(source: Source, cfg: DataConfig) -> numpy.ndarray
        # audio: 1-D int16 (16-bit files, also resampled) or float32 waveform at
        #        cfg.sample_rate (the rule: vrnn_lightning.data.audio)
        # strokes: (T, 3) float32 steps (pen, dx, dy)
        # raises BadInput(reason) for a file that must be skipped (corrupt, empty, too short, ...)

The preparation pipeline (vrnn_lightning.data.pipeline) only ever talks to this interface.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from vrnn_lightning.data.source import CorpusError

NAMES = (
    "timit",
    "blizzard",
    "onomatopoeia",
    "accent",
    "iamondb",
    "audio_folder",
    "gw_online",
    "synthetic_speech",
    "synthetic_handwriting",
)


def get_corpus(name: str) -> ModuleType:
    if name not in NAMES:
        raise CorpusError(f"data.dataset: '{name}' is not a corpus; valid: {', '.join(NAMES)}")
    return importlib.import_module(f"{__name__}.{name}")
