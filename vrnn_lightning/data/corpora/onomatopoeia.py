"""Onomatopoeia (Ubisoft, private; 6,738 non-linguistic human sounds): a folder of clips
(any soundfile-readable format, searched recursively).

Each clip is one whole sequence, truncated to its first 50000 samples (~3.1 s at 16 kHz) as
the paper's code does, unless data.max_samples says otherwise. Split: the clips, sorted by
relative path, are shuffled with ``random.Random(data.split_seed)``; the first 90% train, the
next 5% valid, the last 5% test (the paper's 0.9/0.05/0.05; its code kept 90/10 and no test).
"""

from __future__ import annotations

import numpy as np

from vrnn_lightning.config import DataConfig
from vrnn_lightning.data.audio import read_source
from vrnn_lightning.data.corpora.splits import (
    AUDIO_EXTENSIONS,
    corpus_files,
    file_sources,
    split_shuffled,
)
from vrnn_lightning.data.source import Source

OBSERVATION = "audio"
# bump when what read() returns changes: prepared stores are fingerprinted with it
VERSION = 2  # 2: 16-bit sources stay int16 when resampled or downmixed
EXPECTED = "a folder of audio clips (WAV, FLAC, MP3, ... in any subfolder)"
MAX_SAMPLES = 50000  # the paper's truncation of every clip


def find_sources(cfg: DataConfig) -> dict[str, list[Source]]:
    root, files = corpus_files(cfg, "onomatopoeia", EXPECTED, AUDIO_EXTENSIONS)
    sources = file_sources(root, files)
    return split_shuffled(sources, cfg.valid_fraction, cfg.test_fraction, cfg.split_seed)


def read(source: Source, cfg: DataConfig) -> np.ndarray:
    max_samples = MAX_SAMPLES if cfg.max_samples is None else cfg.max_samples
    return read_source(source, cfg.sample_rate, cfg.frame_size, max_samples)
