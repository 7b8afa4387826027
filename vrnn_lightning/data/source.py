"""What every reader and every corpus shares: a Source (one input of a split) and the two
errors, BadInput (one file is skipped) and CorpusError (the corpus cannot be used at all)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


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
