"""IAM-OnDB (13,040 handwritten text lines, ~200 writers), split as Graves (2013) and the paper.

Expected at data.root (files found in any subfolder): ``lineStrokes/**/<line>.xml`` (e.g.
``lineStrokes/a01/a01-000/a01-000u-01.xml``) and the task split files ``trainset.txt``,
``testset_v.txt``, ``testset_t.txt``, ``testset_f.txt``, one form id per line (``a01-000u``).
A line file belongs to the form whose id prefixes its stem (``a01-000u-01`` -> ``a01-000u``).

Split: train = trainset + testset_t + testset_f, valid = testset_v. The paper reports IAM-OnDB
on this validation set, so there is no test split: ``test`` is an empty list (evaluate with
eval.split=valid). Lines of forms in no split file are left out.

Parsing (the paper's ``fetch_iamondb``): one sequence per text line, all its
``<StrokeSet><Stroke><Point x= y=>`` points in order, the pen lifted after the last point of
every stroke, y negated (IAM's y grows downwards); steps (pen, dx, dy) without the first point.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from vrnn_lightning.config import DataConfig
from vrnn_lightning.data.corpora.splits import list_files, relative_name, require_root
from vrnn_lightning.data.source import BadInput, CorpusError, Source
from vrnn_lightning.data.strokes import points_to_steps

OBSERVATION = "strokes"
VERSION = 1  # bump when what read() returns changes: prepared stores are fingerprinted with it
EXPECTED = (
    "lineStrokes/**/*.xml and the split files trainset.txt, testset_v.txt, testset_t.txt, "
    "testset_f.txt"
)
SPLIT_FILES = {
    "trainset.txt": "train",
    "testset_t.txt": "train",
    "testset_f.txt": "train",
    "testset_v.txt": "valid",
}


def _form_splits(root: Path) -> dict[str, str]:
    """form id -> split, from the split files found anywhere under root."""
    found = {p.name.lower(): p for p in list_files(root, (".txt",))}
    missing = [name for name in SPLIT_FILES if name not in found]
    if missing:
        raise CorpusError(
            f"data.root '{root}': the split file(s) {', '.join(missing)} are missing; "
            f"the iamondb corpus expects {EXPECTED}"
        )
    split_of = {}
    for name, split in SPLIT_FILES.items():
        for line in found[name].read_text(encoding="utf-8").splitlines():
            if line.strip():
                split_of[line.strip()] = split
    return split_of


def find_sources(cfg: DataConfig) -> dict[str, list[Source]]:
    root = require_root(cfg, "iamondb", EXPECTED)
    split_of = _form_splits(root)
    out: dict[str, list[Source]] = {"train": [], "valid": [], "test": []}
    for path in list_files(root, (".xml",)):
        if "linestrokes" not in (part.lower() for part in path.relative_to(root).parts):
            continue
        split = split_of.get(path.stem.rsplit("-", 1)[0])
        if split is not None:
            out[split].append(Source(name=relative_name(path, root), path=path))
    if not out["train"] or not out["valid"]:
        raise CorpusError(
            f"data.root '{root}': {len(out['train'])} training and {len(out['valid'])} "
            f"validation lines found; the iamondb corpus expects {EXPECTED}"
        )
    return out


def read_points(path: Path) -> np.ndarray:
    """(N, 3) points (x, y, lifted) of a lineStrokes XML file, in file coordinates."""
    try:
        tree = ET.parse(path)
    except (ET.ParseError, OSError) as err:
        raise BadInput(f"{path}: malformed XML ({err})") from None
    strokes = tree.getroot().findall("./StrokeSet/Stroke")
    if not strokes:
        raise BadInput(f"{path}: no <StrokeSet><Stroke> elements")
    points = []
    for stroke in strokes:
        xy = []
        for point in stroke.iter("Point"):
            try:
                xy.append((float(point.attrib["x"]), float(point.attrib["y"])))
            except (KeyError, ValueError):
                raise BadInput(f"{path}: a <Point> without numeric x, y: {point.attrib}") from None
        points += [(x, y, float(i == len(xy) - 1)) for i, (x, y) in enumerate(xy)]
    return np.array(points, dtype=np.float64).reshape(-1, 3)


def read(source: Source, cfg: DataConfig) -> np.ndarray:
    steps = points_to_steps(read_points(source.path), flip_y=True, name=str(source.path))
    return steps[source.start : source.stop]
