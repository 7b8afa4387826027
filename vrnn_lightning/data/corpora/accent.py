"""Speech Accent Archive (English paragraphs read by ~2,000 speakers): a folder of recordings,
one speaker each, the file stem naming the speaker (``english1.mp3``); MP3 as distributed,
but any soundfile-readable format is accepted, searched recursively.

Every recording is read at data.sample_rate (16 kHz) mono and cut into consecutive 0.5 s
sequences like Blizzard. Split by speaker: the sorted speakers are shuffled with
``random.Random(data.split_seed)``, 90% train, 5% valid, 5% test (data.valid_fraction,
data.test_fraction), so no speaker is heard in two splits.
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
    split_groups,
)
from vrnn_lightning.data.source import Source

OBSERVATION = "audio"
# bump when what read() returns changes: prepared stores are fingerprinted with it
VERSION = 2  # 2: 16-bit sources stay int16 when resampled or downmixed
EXPECTED = "a folder of recordings named by speaker (english1.mp3, spanish12.mp3, ...)"


def find_sources(cfg: DataConfig) -> dict[str, list[Source]]:
    root, files = corpus_files(cfg, "accent", EXPECTED, AUDIO_EXTENSIONS)
    recordings = file_sources(root, files, speaker_of=lambda p: p.stem)
    by_speaker = split_groups(
        recordings, lambda s: s.speaker, cfg.valid_fraction, cfg.test_fraction, cfg.split_seed
    )
    return {split: cut_sequences(files, cfg) for split, files in by_speaker.items()}


def read(source: Source, cfg: DataConfig) -> np.ndarray:
    return read_source(source, cfg.sample_rate, sequence_samples(cfg), cfg.max_samples)
