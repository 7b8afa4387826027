"""Blizzard Challenge 2013 (one female speaker, ~300 h): a folder of audio files (WAV, FLAC or
MP3, searched recursively, e.g. the ``train/unsegmented/**.mp3`` files).

Every file is read at data.sample_rate (16 kHz) mono and cut into consecutive 0.5 s
sequences (data.seq_len x data.frame_size = 40 x 200 = 8000 samples; the tail is dropped).
The sequences, in the order of the files sorted by relative path, are split by position as
the paper: the first 90% train, the next 5% valid, the last 5% test (data.valid_fraction,
data.test_fraction).
"""

from __future__ import annotations

import numpy as np

from vrnn_lightning.config import DataConfig
from vrnn_lightning.data.audio import read_source
from vrnn_lightning.data.corpora.splits import (
    AUDIO_EXTENSIONS,
    corpus_files,
    cut_sequences,
    file_sources,
    sequence_samples,
    split_in_order,
)
from vrnn_lightning.data.source import Source

OBSERVATION = "audio"
# bump when what read() returns changes: prepared stores are fingerprinted with it
VERSION = 2  # 2: 16-bit sources stay int16 when resampled or downmixed
EXPECTED = "a folder of audio files (WAV, FLAC or MP3, in any subfolder)"


def find_sources(cfg: DataConfig) -> dict[str, list[Source]]:
    root, files = corpus_files(cfg, "blizzard", EXPECTED, AUDIO_EXTENSIONS)
    sequences = cut_sequences(file_sources(root, files), cfg)
    return split_in_order(sequences, cfg.valid_fraction, cfg.test_fraction)


def read(source: Source, cfg: DataConfig) -> np.ndarray:
    return read_source(source, cfg.sample_rate, sequence_samples(cfg), cfg.max_samples)
