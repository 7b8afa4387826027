"""What a prepared copy of each corpus must hold, checked before any work (``vrnn-prepare
--check``): the paper's licensed corpora (TIMIT, Blizzard, IAM-OnDB, Accent, Onomatopoeia),
which nobody can download for you, and the two downloaded ones.

Each check lists findings, each one met or not; a finding not met says what is missing, so a
partial copy is found here and not hours later as a store of the wrong size. The counts are
those of the paper and the spec (docs/paper.md): TIMIT 4,620 train / 1,680 test utterances
(462 / 168 speakers of 10 each), IAM-OnDB's split files (1,535 train / 192 valid forms, 1,438
valid lines), Accent 2,046 speakers, Onomatopoeia 6,738 clips, Blizzard ~315 h.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from vrnn_lightning.config import DataConfig
from vrnn_lightning.data.corpora.splits import AUDIO_EXTENSIONS, list_files

# TIMIT's documentation (README.DOC): speakers per dialect region, 10 sentences each
TIMIT_SPEAKERS = {
    "train": {1: 38, 2: 76, 3: 76, 4: 68, 5: 70, 6: 35, 7: 77, 8: 22},  # 462 -> 4,620
    "test": {1: 11, 2: 26, 3: 26, 4: 32, 5: 28, 6: 11, 7: 23, 8: 11},  # 168 -> 1,680
}
BLIZZARD_HOURS = 314.9  # the paper's copy: 2,267,008 0.5 s sequences
IAMONDB_FORMS = {"train": 1535, "valid": 192}
IAMONDB_VALID_LINES = 1438
ACCENT_SPEAKERS = 2046  # the paper's count; the archive has grown since
ONOMATOPOEIA_CLIPS = 6738
SHOWN = 5  # examples listed of each kind of problem


@dataclass
class Layout:
    """The findings of one check: (met, text) pairs."""

    corpus: str
    root: Path | None
    findings: list[tuple[bool, str]] = field(default_factory=list)

    def add(self, met: bool, text: str) -> bool:
        self.findings.append((bool(met), text))
        return bool(met)

    @property
    def complete(self) -> bool:
        return all(met for met, _ in self.findings)

    @property
    def missing(self) -> list[str]:
        return [text for met, text in self.findings if not met]


def warn_incomplete(cfg: DataConfig, console) -> None:
    """A warning listing what a copy of a licensed corpus lacks (cheap checks only; the
    preparation goes on with what is there: a subset may be meant)."""
    if cfg.dataset not in CHECKS:
        return
    layout = check_layout(cfg, hours=False)
    if not layout.complete:
        console.print(f"[yellow]warning:[/] {layout.corpus} at {layout.root} is incomplete:")
        for text in layout.missing:
            console.print(f"  not met: {text}", highlight=False)
        console.print("  (vrnn-prepare --check lists every finding; preparing what is there)")


def _examples(items) -> str:
    items = sorted(items)
    more = f", ... ({len(items) - SHOWN} more)" if len(items) > SHOWN else ""
    return ", ".join(str(i) for i in items[:SHOWN]) + more


def check_layout(cfg: DataConfig, *, hours: bool = True) -> Layout:
    """The layout findings for ``cfg.dataset`` at ``cfg.root`` (a data.download corpus: its
    finished download, if any). ``hours=False`` skips what reads every audio header."""
    from vrnn_lightning.data.download import PINNED, resolve_root

    cfg = resolve_root(cfg, fetch=False)
    root = Path(cfg.root).expanduser() if cfg.root else None
    layout = Layout(cfg.dataset, root)
    if cfg.dataset.startswith("synthetic"):
        layout.add(True, "generated on the spot: nothing to check")
        return layout
    if root is None:
        if cfg.download:
            layout.add(False, f"not downloaded yet: vrnn-prepare downloads it ({cfg.download})")
        else:
            layout.add(False, "data.root is not set: point it at your copy")
        return layout
    if not layout.add(root.is_dir(), f"data.root {root} is a folder"):
        return layout
    if cfg.download and cfg.download in PINNED:
        return _downloaded(layout, PINNED[cfg.download])
    check = CHECKS.get(cfg.dataset)
    if check is None:
        n = len(list_files(root, AUDIO_EXTENSIONS if cfg.dataset == "audio_folder" else (".txt",)))
        layout.add(n > 0, f"{n:,} files (no expected count for {cfg.dataset})")
        return layout
    check(layout, root, hours)
    return layout


def _downloaded(layout: Layout, pin) -> Layout:
    from vrnn_lightning.data.download import corpus_files

    n = len(corpus_files(layout.root, pin.suffix))
    layout.add(
        n == pin.files,
        f"{n:,} of the {pin.files:,} {pin.suffix} files of {pin.title} {pin.version}",
    )
    return layout


def _timit(layout: Layout, root: Path, hours: bool) -> None:
    from vrnn_lightning.data.corpora.timit import _split_dirs, _utterances

    for split, speakers in TIMIT_SPEAKERS.items():
        dirs = _split_dirs(root, split)
        expected = 10 * sum(speakers.values())
        if not layout.add(bool(dirs), f"{split.upper()}/ found (any letter case)"):
            continue
        utterances = _utterances(dirs, root)
        layout.add(
            len(utterances) == expected,
            f"{split.upper()}: {len(utterances):,} of {expected:,} utterances (.WAV)",
        )
        per_speaker: dict[tuple[str, str], int] = Counter()
        for s in utterances:
            dr, speaker = Path(s.name).parts[-3:-1]
            per_speaker[(dr.upper(), speaker.upper())] += 1
        by_region: dict[int, int] = defaultdict(int)
        for dr, _ in per_speaker:
            if dr[2:].isdigit():
                by_region[int(dr[2:])] += 1
        short = [f"{d}/{s} ({n})" for (d, s), n in per_speaker.items() if n != 10]
        if short:
            layout.add(
                False, f"{split.upper()}: speakers without 10 utterances: {_examples(short)}"
            )
        for region, n in speakers.items():
            if by_region.get(region, 0) != n:
                layout.add(
                    False, f"{split.upper()}/DR{region}: {by_region.get(region, 0)} of {n} speakers"
                )
    if layout.complete:
        layout.add(True, "the split: 4,389 train, 231 valid (SRNN's, seed 1234), 1,680 test")


def _blizzard(layout: Layout, root: Path, hours: bool) -> None:
    files = list_files(root, AUDIO_EXTENSIONS)
    if not layout.add(
        bool(files), f"{len(files):,} audio files (the paper: train/unsegmented/**.mp3)"
    ):
        return
    if hours:
        total = _hours(files, layout)
        layout.add(
            total >= 0.9 * BLIZZARD_HOURS,
            f"{total:.1f} h of audio (the paper's copy: {BLIZZARD_HOURS} h)",
        )


def _hours(files: list[Path], layout: Layout) -> float:
    from vrnn_lightning.data.audio import audio_length
    from vrnn_lightning.data.source import BadInput

    total, bad = 0, []
    for path in files:
        try:
            total += audio_length(path, 16000)
        except BadInput:
            bad.append(path.name)
    if bad:
        layout.add(False, f"{len(bad)} unreadable audio files: {_examples(bad)}")
    return total / 16000 / 3600


def _iamondb(layout: Layout, root: Path, hours: bool) -> None:
    from vrnn_lightning.data.corpora.iamondb import SPLIT_FILES

    found = {p.name.lower(): p for p in list_files(root, (".txt",))}
    absent = [name for name in SPLIT_FILES if name not in found]
    layout.add(
        not absent,
        "the split files "
        + ", ".join(SPLIT_FILES)
        + " found"
        + (f" (missing: {', '.join(absent)})" if absent else ""),
    )
    lines_of: dict[str, int] = Counter()
    xml = [p for p in list_files(root, (".xml",)) if "linestrokes" in str(p).lower()]
    for path in xml:
        lines_of[path.stem.rsplit("-", 1)[0]] += 1
    layout.add(bool(xml), f"{len(xml):,} lineStrokes/**/*.xml line files (the paper: 13,040)")
    forms: dict[str, set[str]] = {"train": set(), "valid": set()}
    for name, split in SPLIT_FILES.items():
        if name in found:
            lines = found[name].read_text(encoding="utf-8").splitlines()
            forms[split].update(line.strip() for line in lines if line.strip())
    if absent:
        return
    for split, n in IAMONDB_FORMS.items():
        layout.add(len(forms[split]) == n, f"{split}: {len(forms[split]):,} of {n:,} forms")
        without = [f for f in forms[split] if not lines_of.get(f)]
        if without:
            layout.add(False, f"{split}: forms without line files: {_examples(without)}")
    valid_lines = sum(lines_of.get(f, 0) for f in forms["valid"])
    layout.add(
        valid_lines == IAMONDB_VALID_LINES,
        f"valid: {valid_lines:,} of {IAMONDB_VALID_LINES:,} lines",
    )


def _accent(layout: Layout, root: Path, hours: bool) -> None:
    files = list_files(root, AUDIO_EXTENSIONS)
    layout.add(
        len(files) >= ACCENT_SPEAKERS,
        f"{len(files):,} recordings (the paper: {ACCENT_SPEAKERS:,} speakers; the archive has "
        "grown since)",
    )
    odd = [p.name for p in files if not re.fullmatch(r"[a-z]+\d+", p.stem, re.IGNORECASE)]
    if odd:
        layout.add(False, f"named not as language + number (english1.mp3): {_examples(odd)}")


def _onomatopoeia(layout: Layout, root: Path, hours: bool) -> None:
    n = len(list_files(root, AUDIO_EXTENSIONS))
    layout.add(n == ONOMATOPOEIA_CLIPS, f"{n:,} of {ONOMATOPOEIA_CLIPS:,} clips")


CHECKS = {
    "timit": _timit,
    "blizzard": _blizzard,
    "iamondb": _iamondb,
    "accent": _accent,
    "onomatopoeia": _onomatopoeia,
}
