"""GW online: online-handwritten George Washington words (Wieprecht et al., DAS 2016), one word
per text file in one folder per page (``2700270/1426619859856_270.txt``).

File format: the first line is the word, then one point per line, ``x y pen``, with the origin
bottom left and y growing upwards (so no flip), ``pen`` = 1 when the pen is lifted after the
point. Steps (pen, dx, dy) as for IAM-OnDB.

Split by page folder, so that words of one page never straddle two splits: the sorted pages
are shuffled with ``random.Random(data.split_seed)`` and split by data.valid_fraction /
data.test_fraction, at least one page each (the 10 pages: 8 train, 1 valid, 1 test). With
fewer than 3 page folders the word files themselves are shuffled and split.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vrnn_lightning.config import DataConfig
from vrnn_lightning.data.corpora.splits import (
    corpus_files,
    file_sources,
    split_groups,
    split_shuffled,
)
from vrnn_lightning.data.source import BadInput, Source
from vrnn_lightning.data.strokes import points_to_steps

OBSERVATION = "strokes"
VERSION = 1  # bump when what read() returns changes: prepared stores are fingerprinted with it
EXPECTED = "page folders of word files (.txt: the word, then one 'x y pen' point per line)"


def read_points(path: Path) -> tuple[str, np.ndarray]:
    """(word, (N, 3) points) of a GW word file; BadInput naming the file and line on any flaw."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise BadInput(f"{path}: cannot read ({err})") from None
    if not lines or not lines[0].strip():
        raise BadInput(f"{path}: empty; expected the word on the first line")
    points = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split()
        try:
            if len(fields) != 3:
                raise ValueError
            points.append([float(v) for v in fields])
        except ValueError:
            raise BadInput(f"{path}:{number}: expected 'x y pen', got {line.strip()!r}") from None
    return lines[0].strip(), np.array(points, dtype=np.float64).reshape(-1, 3)


def find_sources(cfg: DataConfig) -> dict[str, list[Source]]:
    root, files = corpus_files(cfg, "gw_online", EXPECTED, (".txt",))
    sources = file_sources(root, files)
    pages = {s.path.parent for s in sources}
    if len(pages) >= 3:
        return split_groups(
            sources, lambda s: s.path.parent, cfg.valid_fraction, cfg.test_fraction, cfg.split_seed
        )
    return split_shuffled(sources, cfg.valid_fraction, cfg.test_fraction, cfg.split_seed)


def read(source: Source, cfg: DataConfig) -> np.ndarray:
    _word, points = read_points(source.path)
    steps = points_to_steps(points, flip_y=False, name=str(source.path))
    return steps[source.start : source.stop]
