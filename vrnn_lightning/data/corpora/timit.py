"""TIMIT (LDC93S1) in its LDC layout: ``TRAIN|TEST/DR*/SPEAKER/*.WAV`` (NIST SPHERE, 16 kHz).

Split (the de-facto standard of SRNN, Z-forcing and STCN; the paper's own lists are not
public): the training files, sorted by their lower-cased relative path, are shuffled with
``random.Random(data.split_seed)`` (1234); the first round(data.valid_fraction * n) go to
valid (231 of the 4620), the rest to train (4389); test is every test file (1680, SA
sentences included). Each utterance is one whole sequence. Folder and file names may be in
any letter case; ``X.WAV.wav`` copies made by some redistributions are skipped.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np

from vrnn_lightning.config import DataConfig
from vrnn_lightning.data.audio import read_source
from vrnn_lightning.data.corpora.splits import nothing_usable, require_root, split_counts
from vrnn_lightning.data.source import CorpusError, Source

OBSERVATION = "audio"
# bump when what read() returns changes: prepared stores are fingerprinted with it
VERSION = 2  # 2: 16-bit sources stay int16 when resampled or downmixed
EXPECTED = "the LDC TIMIT folder: TRAIN/ and TEST/ holding DR*/SPEAKER/*.WAV (any letter case)"


def _split_dirs(root: Path, name: str) -> list[Path]:
    """The folders ``name`` in any letter case, in root or one level down (e.g. root/TIMIT)."""
    for parent in (root, *sorted(p for p in root.iterdir() if p.is_dir())):
        found = [c for c in sorted(parent.iterdir()) if c.is_dir() and c.name.lower() == name]
        if found:
            return found
    return []


def _utterances(split_dirs: list[Path], root: Path) -> list[Source]:
    chosen: dict[str, Path] = {}
    for path in (p for d in split_dirs for p in d.glob("*/*/*")):
        dr, _speaker, file = path.parts[-3:]
        if not (dr.lower().startswith("dr") and file.lower().endswith(".wav") and path.is_file()):
            continue
        utterance = path.parent.joinpath(file.split(".")[0]).relative_to(root).as_posix().lower()
        # one file per utterance: prefer SA1.WAV (SPHERE) over an SA1.WAV.wav copy
        if utterance not in chosen or len(path.name) < len(chosen[utterance].name):
            chosen[utterance] = path
    ordered = sorted(chosen.values(), key=lambda p: p.relative_to(root).as_posix().lower())
    return [
        Source(name=p.relative_to(root).as_posix(), path=p, speaker=p.parent.name.upper())
        for p in ordered
    ]


def find_sources(cfg: DataConfig) -> dict[str, list[Source]]:
    root = require_root(cfg, "timit", EXPECTED)
    train_dirs, test_dirs = _split_dirs(root, "train"), _split_dirs(root, "test")
    if not train_dirs or not test_dirs:
        raise nothing_usable(root, "timit", EXPECTED)
    train, test = _utterances(train_dirs, root), _utterances(test_dirs, root)
    if not train or not test:
        raise CorpusError(
            f"data.root '{root}': found {len(train)} training and {len(test)} test utterances; "
            f"the timit corpus expects {EXPECTED}"
        )
    random.Random(cfg.split_seed).shuffle(train)
    n_valid, _ = split_counts(len(train), cfg.valid_fraction, 0.0)
    valid = sorted(train[:n_valid], key=lambda s: s.name.lower())
    train = sorted(train[n_valid:], key=lambda s: s.name.lower())
    return {"train": train, "valid": valid, "test": test}


def read(source: Source, cfg: DataConfig) -> np.ndarray:
    return read_source(source, cfg.sample_rate, cfg.frame_size, cfg.max_samples)
