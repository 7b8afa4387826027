"""vrnn-prepare --check: the layout of the licensed corpora (and the downloaded ones) against
what they must hold, saying what is missing; exit 0 when complete, 2 otherwise."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import FSDD_DIR
from rich.console import Console

from vrnn_lightning.data import layout as lay
from vrnn_lightning.data.layout import TIMIT_SPEAKERS, check_layout, warn_incomplete
from vrnn_lightning.data.store import as_data_config
from vrnn_lightning.prepare import main as prepare_main

SENTENCES = ("SA1", "SA2", "SI1", "SI2", "SI3", "SX1", "SX2", "SX3", "SX4", "SX5")


def fake_timit(root: Path) -> Path:
    """TIMIT's LDC layout with empty files: 462 + 168 speakers of 10 utterances each."""
    for split, regions in TIMIT_SPEAKERS.items():
        for region, n in regions.items():
            for i in range(n):
                speaker = root / split.upper() / f"DR{region}" / f"M{split[:2].upper()}{i:03d}"
                speaker.mkdir(parents=True)
                for sentence in SENTENCES:
                    (speaker / f"{sentence}.WAV").touch()
                    (speaker / f"{sentence}.PHN").touch()
    return root


def check(dataset: str, root: Path | None, **data):
    root = str(root) if root is not None else None
    return check_layout(as_data_config({"dataset": dataset, "root": root, **data}))


@pytest.fixture(scope="module")
def timit(tmp_path_factory) -> Path:
    return fake_timit(tmp_path_factory.mktemp("timit") / "TIMIT")


def test_a_complete_timit_passes_with_its_split(timit, tmp_path, capsys):
    layout = check("timit", timit)
    assert layout.complete, layout.missing
    texts = [t for _, t in layout.findings]
    assert "TRAIN: 4,620 of 4,620 utterances (.WAV)" in texts
    assert "TEST: 1,680 of 1,680 utterances (.WAV)" in texts
    assert any("4,389 train, 231 valid" in t for t in texts)
    cache = tmp_path / "cache"
    args = ["--check", "--config", "conf/timit.yaml", f"data.root={timit}"]
    assert prepare_main([*args, f"data.cache_dir={cache}"]) == 0
    assert "complete" in capsys.readouterr().out
    assert not cache.exists()  # a check writes nothing


def test_a_partial_timit_says_what_is_missing_and_exits_2(timit, tmp_path, capsys):
    import shutil

    partial = tmp_path / "TIMIT"
    shutil.copytree(timit, partial)
    (partial / "TRAIN" / "DR1" / "MTR000" / "SX5.WAV").unlink()
    shutil.rmtree(partial / "TEST" / "DR3" / "MTE000")
    layout = check("timit", partial)
    missing = "\n".join(layout.missing)
    assert "TRAIN: 4,619 of 4,620 utterances" in missing
    assert "speakers without 10 utterances: DR1/MTR000 (9)" in missing
    assert "TEST: 1,670 of 1,680 utterances" in missing
    assert "TEST/DR3: 25 of 26 speakers" in missing
    assert prepare_main(["--check", "--config", "conf/timit.yaml", f"data.root={partial}"]) == 2
    captured = capsys.readouterr()
    assert "no TEST/DR3: 25 of 26 speakers" in captured.out
    assert "finding(s) not met" in captured.err
    console = Console(file=io.StringIO(), width=200)
    warn_incomplete(as_data_config({"dataset": "timit", "root": str(partial)}), console)
    assert "incomplete" in console.file.getvalue()  # what vrnn-prepare says before preparing


def test_timit_without_a_test_folder(tmp_path):
    (tmp_path / "TRAIN" / "DR1" / "MX0").mkdir(parents=True)
    layout = check("timit", tmp_path)
    assert "TEST/ found (any letter case)" in layout.missing


def test_no_root_or_no_folder_is_said(tmp_path):
    assert check("timit", None).missing == ["data.root is not set: point it at your copy"]
    assert check("timit", tmp_path / "nowhere").missing[0].endswith("is a folder")


def iamondb(root: Path, forms: dict[str, list[str]], lines: dict[str, int]) -> Path:
    for name, ids in forms.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("".join(f"{i}\n" for i in ids))
    for form, n in lines.items():
        folder = root / "lineStrokes" / form[:3] / form[:7]
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(n):
            (folder / f"{form}-{k + 1:02d}.xml").write_text("<WhiteboardCaptureSession/>")
    return root


def test_iamondb_names_missing_split_files_forms_and_lines(tmp_path, monkeypatch):
    monkeypatch.setattr(lay, "IAMONDB_FORMS", {"train": 3, "valid": 1})
    monkeypatch.setattr(lay, "IAMONDB_VALID_LINES", 2)
    forms = {
        "trainset.txt": ["a01-000u", "a01-001w"],
        "testset_t.txt": ["a02-000u"],
        "testset_f.txt": [],
        "testset_v.txt": ["a03-000u"],
    }
    lines = {"a01-000u": 3, "a01-001w": 2, "a02-000u": 1, "a03-000u": 2}
    assert check("iamondb", iamondb(tmp_path / "ok", forms, lines)).complete
    del lines["a02-000u"]
    lines["a03-000u"] = 1
    forms.pop("testset_f.txt")
    layout = check("iamondb", iamondb(tmp_path / "bad", forms, lines))
    missing = "\n".join(layout.missing)
    assert "missing: testset_f.txt" in missing
    layout = check("iamondb", iamondb(tmp_path / "bad2", {**forms, "testset_f.txt": []}, lines))
    missing = "\n".join(layout.missing)
    assert "train: forms without line files: a02-000u" in missing
    assert "valid: 1 of 2 lines" in missing


def wav(path: Path, seconds: float = 0.1) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(int(16000 * seconds), dtype=np.int16), 16000, subtype="PCM_16")


def test_blizzard_counts_its_hours(tmp_path, monkeypatch):
    for i in range(3):
        wav(tmp_path / "train" / "unsegmented" / f"book{i}.wav", seconds=1.2)
    monkeypatch.setattr(lay, "BLIZZARD_HOURS", 1.0 / 3600)  # 1 s
    assert check("blizzard", tmp_path).complete
    monkeypatch.setattr(lay, "BLIZZARD_HOURS", 10.0 / 3600)
    assert any("h of audio" in t for t in check("blizzard", tmp_path).missing)
    (tmp_path / "train" / "unsegmented" / "bad.wav").write_bytes(b"not audio")
    assert any(
        "1 unreadable audio files: bad.wav" in t for t in check("blizzard", tmp_path).missing
    )


def test_accent_and_onomatopoeia_counts_and_names(tmp_path, monkeypatch):
    for name in ("english1", "spanish12", "mandarin3"):
        wav(tmp_path / "accent" / f"{name}.wav")
    monkeypatch.setattr(lay, "ACCENT_SPEAKERS", 3)
    assert check("accent", tmp_path / "accent").complete
    wav(tmp_path / "accent" / "recording (copy).wav")
    assert any("recording (copy).wav" in t for t in check("accent", tmp_path / "accent").missing)
    monkeypatch.setattr(lay, "ACCENT_SPEAKERS", 10)
    assert any("4 recordings" in t for t in check("accent", tmp_path / "accent").missing)
    for i in range(4):
        wav(tmp_path / "ono" / f"clip{i}.wav")
    monkeypatch.setattr(lay, "ONOMATOPOEIA_CLIPS", 5)
    assert check("onomatopoeia", tmp_path / "ono").missing == ["4 of 5 clips"]


def test_a_download_corpus_not_yet_fetched_is_said_and_nothing_is_fetched(tmp_path):
    layout = check_layout(
        as_data_config({"dataset": "audio_folder", "download": "fsdd", "cache_dir": str(tmp_path)})
    )
    assert layout.missing == ["not downloaded yet: vrnn-prepare downloads it (fsdd)"]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not FSDD_DIR.is_dir(), reason="no ../shared/data/fsdd")
def test_the_five_speaker_copy_is_a_part_of_fsdd_v1_0_10():
    layout = check("audio_folder", FSDD_DIR, download="fsdd")
    assert layout.missing == ["2,500 of the 3,000 .wav files of Free Spoken Digit Dataset 1.0.10"]
