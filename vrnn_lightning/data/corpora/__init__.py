"""Corpora: where each dataset's files are, how each file is read, and its split rule.

Each corpus is one small module exposing

    KIND: str                                  # "audio" or "strokes"
    def find_sources(cfg: DataConfig) -> dict[str, list[Source]]
        # split name ("train", "valid", "test") -> its sources, in a deterministic order;
        # raises CorpusError when the root is missing or holds nothing usable
    def read(source: Source, cfg: DataConfig) -> numpy.ndarray
        # audio: 1-D int16 (16-bit files, also resampled) or float32 waveform at
        #        cfg.sample_rate (the rule: vrnn_lightning.data.audio)
        # strokes: (T, 3) float32 steps (pen, dx, dy)
        # raises BadInput(reason) for a file that must be skipped (corrupt, empty, too short, ...)

The preparation pipeline (vrnn_lightning.prepare) only ever talks to this interface.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType


class CorpusError(RuntimeError):
    """The corpus as a whole cannot be used (missing root, nothing usable); says what to expect."""


class BadInput(ValueError):
    """One input file cannot be used; it is skipped, counted and reported with this reason."""


@dataclass(frozen=True)
class Source:
    """One input of a split: usually a file, optionally a sample range of it."""

    name: str  # stable identifier stored in the frame store (e.g. the path relative to root)
    path: Path | None = None  # None for generated corpora
    start: int = 0  # first sample (audio) / step (strokes) to keep
    stop: int | None = None  # one past the last; None: to the end
    speaker: str | None = None
    seed: int = 0  # generated corpora: what to generate


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
