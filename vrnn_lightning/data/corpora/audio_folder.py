"""Any folder of audio files (searched recursively), each file one whole sequence; e.g. the
Free Spoken Digit Dataset (``{digit}_{speaker}_{take}.wav``, 8 kHz).

Split: with data.speaker_pattern (a regex searched in each file name, group 1 = the
speaker), by speaker: the sorted speakers are shuffled with ``random.Random(data.split_seed)``
and split by data.valid_fraction / data.test_fraction, at least one speaker each once there are
3, so no speaker is in two splits (FSDD: 3 train, 1 valid, 1 test speaker). Without it, the
files are shuffled the same way and split by the same fractions. data.max_samples truncates.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from vrnn_lightning.config import DataConfig
from vrnn_lightning.data.audio import read_source
from vrnn_lightning.data.corpora.splits import (
    AUDIO_EXTENSIONS,
    corpus_files,
    file_sources,
    split_groups,
    split_shuffled,
)
from vrnn_lightning.data.source import CorpusError, Source

OBSERVATION = "audio"
# bump when what read() returns changes: prepared stores are fingerprinted with it
VERSION = 2  # 2: 16-bit sources stay int16 when resampled or downmixed
EXPECTED = "a folder of audio files (WAV, FLAC, MP3, ... in any subfolder)"


def _speaker_regex(pattern: str) -> re.Pattern:
    try:
        regex = re.compile(pattern)
    except re.error as err:
        raise CorpusError(f"data.speaker_pattern '{pattern}' is not a valid regex: {err}") from None
    if regex.groups < 1:
        raise CorpusError(
            f"data.speaker_pattern '{pattern}' has no group; group 1 must capture the speaker"
        )
    return regex


def _speakers(files: list[Path], pattern: str) -> dict[Path, str]:
    regex = _speaker_regex(pattern)
    speakers, unmatched = {}, []
    for path in files:
        m = regex.search(path.name)
        if m and m.group(1):
            speakers[path] = m.group(1)
        else:
            unmatched.append(path.name)
    if unmatched:
        raise CorpusError(
            f"data.speaker_pattern '{pattern}' finds no speaker (group 1) in {len(unmatched)} "
            f"of {len(files)} file names, e.g. {', '.join(unmatched[:3])}"
        )
    return speakers


def find_sources(cfg: DataConfig) -> dict[str, list[Source]]:
    root, files = corpus_files(cfg, "audio_folder", EXPECTED, AUDIO_EXTENSIONS)
    if cfg.speaker_pattern is None:
        sources = file_sources(root, files)
        return split_shuffled(sources, cfg.valid_fraction, cfg.test_fraction, cfg.split_seed)
    speaker_of = _speakers(files, cfg.speaker_pattern)
    sources = file_sources(root, files, speaker_of=speaker_of.__getitem__)
    return split_groups(
        sources, lambda s: s.speaker, cfg.valid_fraction, cfg.test_fraction, cfg.split_seed
    )


def read(source: Source, cfg: DataConfig) -> np.ndarray:
    return read_source(source, cfg.sample_rate, cfg.frame_size, cfg.max_samples)
