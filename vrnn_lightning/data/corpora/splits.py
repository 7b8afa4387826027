"""What several corpora share: checking data.root, listing files, fraction and group splits,
and cutting audio files into fixed-length sequences."""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TypeVar

from vrnn_lightning.config import DataConfig
from vrnn_lightning.data.audio import audio_length
from vrnn_lightning.data.source import BadInput, CorpusError, Source

T = TypeVar("T")

SPLITS = ("train", "valid", "test")
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".sph", ".nist", ".aif", ".aiff", ".au")


def require_root(cfg: DataConfig, corpus: str, expected: str) -> Path:
    """``data.root`` as an existing folder, else CorpusError saying what the corpus expects."""
    if not cfg.root:
        raise CorpusError(f"data.root is not set; the {corpus} corpus expects {expected}")
    root = Path(cfg.root).expanduser()
    if not root.is_dir():
        raise CorpusError(
            f"data.root '{root}' is not a folder; the {corpus} corpus expects {expected}"
        )
    return root


def nothing_usable(root: Path, corpus: str, expected: str) -> CorpusError:
    return CorpusError(
        f"data.root '{root}' holds nothing usable: the {corpus} corpus expects {expected}"
    )


def corpus_files(
    cfg: DataConfig, corpus: str, expected: str, extensions: Sequence[str]
) -> tuple[Path, list[Path]]:
    """``data.root`` and its files with one of ``extensions``; CorpusError saying what the
    corpus expects when the root is missing or holds none."""
    root = require_root(cfg, corpus, expected)
    files = list_files(root, extensions)
    if not files:
        raise nothing_usable(root, corpus, expected)
    return root, files


# Problems met while listing a corpus (a broken link, a link loop, an unreadable folder, a
# name that is not UTF-8): collected here while the pipeline lists, and reported with the
# train split's skipped files; each such entry is left out of the listing.
_LISTING_PROBLEMS: ContextVar[list[dict] | None] = ContextVar("listing_problems", default=None)


@contextmanager
def listing_problems() -> Iterator[list[dict]]:
    """Collects ``{"file", "reason"}`` for every entry ``list_files`` leaves out meanwhile."""
    problems: list[dict] = []
    token = _LISTING_PROBLEMS.set(problems)
    try:
        yield problems
    finally:
        _LISTING_PROBLEMS.reset(token)


def printable(name: str) -> str:
    """A file name as text that can be written anywhere: undecodable bytes as \\xNN."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _left_out(root: Path, path: str, reason: str) -> None:
    problems = _LISTING_PROBLEMS.get()
    if problems is not None:
        problems.append({"file": printable(os.path.relpath(path, root)), "reason": reason})


def list_files(root: Path, extensions: Sequence[str]) -> list[Path]:
    """Files under ``root`` (recursive, following links) whose suffix is one of ``extensions``
    in any letter case, sorted by relative path; hidden files and folders (e.g. macOS ``._x``
    resource forks) are skipped.

    Left out, and reported when the pipeline lists (``listing_problems``): broken symbolic
    links, a link to a folder already listed (a loop listed every file 41 times), folders
    that cannot be read, and names that are not UTF-8 (they could not be stored or reported).
    """
    extensions = tuple(e.lower() for e in extensions)
    found = []
    seen: set[tuple[int, int]] = set()

    def unreadable(err: OSError) -> None:
        _left_out(root, err.filename, f"folder cannot be read ({err.strerror})")

    for folder, dirs, names in os.walk(root, followlinks=True, onerror=unreadable):
        st = os.stat(folder)
        if (st.st_dev, st.st_ino) in seen:  # reached again through a link: a loop or a copy
            _left_out(root, folder, "a link to a folder already listed (a loop?); left out")
            dirs[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for n in names:
            if n.startswith(".") or Path(n).suffix.lower() not in extensions:
                continue
            path = os.path.join(folder, n)
            if printable(n) != n:
                _left_out(root, path, "file name is not valid UTF-8; rename the file")
            elif not os.path.exists(path):
                target = os.readlink(path) if os.path.islink(path) else "?"
                _left_out(root, path, f"broken symbolic link (to {target})")
            else:
                found.append(Path(path))
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def relative_name(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def split_counts(n: int, valid_fraction: float, test_fraction: float) -> tuple[int, int]:
    """(n_valid, n_test) for ``n`` items: round(fraction * n), at least one each (when its
    fraction is > 0) once there are 3 items, and always leaving one item for train."""
    for key, value in (("valid_fraction", valid_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= value < 1.0:
            raise CorpusError(f"data.{key}: {value} is not in [0, 1)")
    if valid_fraction + test_fraction >= 1.0:
        raise CorpusError(
            f"data.valid_fraction + data.test_fraction = {valid_fraction + test_fraction} "
            "leaves nothing to train on; it must be < 1"
        )
    n_valid, n_test = round(valid_fraction * n), round(test_fraction * n)
    if n >= 3:
        n_valid = max(n_valid, 1) if valid_fraction > 0 else 0
        n_test = max(n_test, 1) if test_fraction > 0 else 0
    while n > 0 and n_valid + n_test >= n:  # rounding must not empty train
        if n_test >= n_valid and n_test > 0:
            n_test -= 1
        else:
            n_valid -= 1
    return n_valid, n_test


def split_in_order(items: Sequence[T], valid_fraction: float, test_fraction: float):
    """First items to train, the next ``valid_fraction`` to valid, the last ``test_fraction``
    to test (the paper's 0.9/0.05/0.05 rule for corpora without a predefined split)."""
    n_valid, n_test = split_counts(len(items), valid_fraction, test_fraction)
    n_train = len(items) - n_valid - n_test
    return {
        "train": list(items[:n_train]),
        "valid": list(items[n_train : n_train + n_valid]),
        "test": list(items[n_train + n_valid :]),
    }


def split_shuffled(items: Sequence[T], valid_fraction: float, test_fraction: float, seed: int):
    """``split_in_order`` over a ``random.Random(seed)`` shuffle of ``items``; each split keeps
    the items' own order, so it reads like the (sorted) input."""
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    parts = split_in_order(order, valid_fraction, test_fraction)
    return {split: [items[i] for i in sorted(idx)] for split, idx in parts.items()}


def split_groups(
    items: Sequence[T],
    group_of: Callable[[T], Hashable],
    valid_fraction: float,
    test_fraction: float,
    seed: int,
):
    """Split whole groups (speakers, pages): the sorted groups are shuffled with ``seed`` and
    split by the fractions, so no group is in two splits; items keep their order."""
    groups = sorted({group_of(item) for item in items})
    parts = split_shuffled(groups, valid_fraction, test_fraction, seed)
    split_of = {group: split for split, members in parts.items() for group in members}
    out = {split: [] for split in SPLITS}
    for item in items:
        out[split_of[group_of(item)]].append(item)
    return out


def sequence_samples(cfg: DataConfig) -> int:
    """Samples per fixed-length sequence: data.seq_len frames of data.frame_size (0.5 s by
    default: 40 x 200 at 16 kHz, as Blizzard and Accent in the paper)."""
    return cfg.seq_len * cfg.frame_size


def cut_sequences(sources: Sequence[Source], cfg: DataConfig) -> list[Source]:
    """Each file cut into consecutive whole sequences of ``sequence_samples(cfg)`` samples at
    data.sample_rate (the tail is dropped), using only the files' headers.

    A file that cannot be read or is shorter than one sequence stays one whole-file source,
    so that ``read`` rejects it with the reason and the pipeline counts and reports it.
    """
    size = sequence_samples(cfg)
    out = []
    for src in sources:
        try:
            n = audio_length(src.path, cfg.sample_rate)
        except BadInput:
            n = 0
        if cfg.max_samples is not None:
            n = min(n, cfg.max_samples)
        if n < size:
            out.append(src)
            continue
        out += [
            Source(
                name=f"{src.name}[{a}:{a + size}]",
                path=src.path,
                start=a,
                stop=a + size,
                speaker=src.speaker,
            )
            for a in range(0, n - size + 1, size)
        ]
    return out


def file_sources(
    root: Path, paths: Sequence[Path], speaker_of: Callable[[Path], str | None] | None = None
) -> list[Source]:
    return [
        Source(name=relative_name(p, root), path=p, speaker=speaker_of(p) if speaker_of else None)
        for p in paths
    ]
