"""Bad data never silently lies (issue 11): mixed sample types, outliers, odd file systems,
a full disk and an empty validation split are reported, skipped or stopped with a message."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import FSDD_DIR, fsdd_subset, tiny, tiny_config

from vrnn_lightning.data import pipeline
from vrnn_lightning.data.corpora import get_corpus
from vrnn_lightning.data.store import DiskFull, FrameStore, as_data_config

RATE = 8000


def _cfg(tmp_path, **kw):
    base = dict(
        dataset="audio_folder",
        root=str(tmp_path / "corpus"),
        cache_dir=str(tmp_path / "cache"),
        sample_rate=RATE,
        frame_size=50,
        seq_len=8,
        valid_fraction=0.2,
        test_fraction=0.2,
        speaker_pattern=r"^(\w+?)_",
        split_seed=0,  # speaker 0 (the mixed files) is a train speaker
    )
    return as_data_config({**base, **kw})


def _wave(seed: int, n: int = 2000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(n) * 3000 + 200).clip(-32768, 32767).astype(np.int16)


def _mixed_corpus(root: Path, float_first: bool) -> dict[str, np.ndarray]:
    """16-bit files of speakers a..e, plus a float and a 24-bit copy of one of speaker 0's
    16-bit files (m is a train speaker; the test checks that)."""
    root.mkdir(parents=True)
    waves = {}
    for spk in "abcde0":
        for i in range(2):
            waves[f"{spk}_{i}.wav"] = _wave(ord(spk) * 10 + i)
    same = waves["0_0.wav"]
    for name, w in waves.items():
        sf.write(root / name, w, RATE, subtype="PCM_16")
    # "0_-..." sorts first: the float file is the first file of the corpus
    float_name = "0_-float.wav" if float_first else "0_zfloat.wav"
    sf.write(root / float_name, same.astype(np.float32) / 32768, RATE, subtype="FLOAT")
    sf.write(root / "0_z24bit.wav", same.astype(np.float32) / 32768, RATE, subtype="PCM_24")
    return {"float": float_name, "int16": "0_0.wav", "24bit": "0_z24bit.wav"}


@pytest.mark.parametrize("float_first", [False, True], ids=["int16-first", "float-first"])
def test_statistics_see_the_values_the_reader_normalises(tmp_path, float_first):
    names = _mixed_corpus(tmp_path / "corpus", float_first)
    cfg = _cfg(tmp_path)
    splits = get_corpus("audio_folder").find_sources(cfg)
    train_names = [s.name for s in splits["train"]]
    assert set(names.values()) <= set(train_names)
    if float_first:  # the first train file decides the store's type
        assert sorted(train_names)[0] == names["float"]

    folder = pipeline.prepare(cfg, progress=False)
    train = FrameStore(folder / "train.h5")
    assert train.dtype == (np.float32 if float_first else np.int16)
    x = np.concatenate([train.sequence(i).ravel() for i in range(len(train))]).astype(np.float64)
    assert abs(x.mean()) < 1e-4 and abs(x.std() - 1) < 1e-4
    at = {n: i for i, n in enumerate(train.names)}
    reference = train.sequence(at[names["int16"]])
    np.testing.assert_allclose(train.sequence(at[names["float"]]), reference, atol=1e-6)
    np.testing.assert_allclose(train.sequence(at[names["24bit"]]), reference, atol=1e-6)
    # valid and test are normalised with the same statistics, on the same scale
    valid = FrameStore(folder / "valid.h5")
    v = np.concatenate([valid.sequence(i).ravel() for i in range(len(valid))])
    assert 0.5 < v.std() < 2


def _skipped(folder: Path) -> dict[str, str]:
    report = json.loads((folder / "report.json").read_text())
    return {x["file"]: x["reason"] for s in report["splits"].values() for x in s["skipped"]}


def test_float_audio_far_beyond_full_scale_and_absurd_rates_are_skipped(tmp_path):
    root = tmp_path / "corpus"
    root.mkdir()
    for spk in "abcde":
        for i in range(2):
            sf.write(root / f"{spk}_{i}.wav", _wave(ord(spk) + i), RATE, subtype="PCM_16")
    loud = _wave(1).astype(np.float32) / 32768
    loud[100] = 1e30  # one absurd sample
    sf.write(root / "a_loud.wav", loud, RATE, subtype="FLOAT")
    over = _wave(2).astype(np.float32) / 32768
    over[100] = 1.2  # a small overshoot is real audio
    sf.write(root / "a_over.wav", over, RATE, subtype="FLOAT")
    sf.write(root / "a_1hz.wav", _wave(3), 1, subtype="PCM_16")  # a corrupt header's rate
    cfg = _cfg(tmp_path)
    folder = pipeline.prepare(cfg, progress=False)
    skipped = _skipped(folder)
    assert set(skipped) == {"a_loud.wav", "a_1hz.wav"}
    assert "beyond full scale" in skipped["a_loud.wav"] and "1e+30" in skipped["a_loud.wav"]
    assert "sample rate 1 Hz" in skipped["a_1hz.wav"]
    train = FrameStore(folder / "train.h5")
    assert 1000 < train.std < 5000  # the 16-bit files' scale, not the outlier's


def test_absurd_pen_offset_is_skipped(tmp_path):
    root = tmp_path / "corpus"
    rng = np.random.default_rng(0)
    for page in range(4):
        for word in range(3):
            pts = np.cumsum(rng.integers(-20, 20, size=(30, 2)), axis=0) + 500
            lines = ["word"] + [f"{x} {y} {int(i % 10 == 9)}" for i, (x, y) in enumerate(pts)]
            if (page, word) == (0, 1):
                lines.insert(5, "1e30 300 0")
            (root / f"p{page}").mkdir(parents=True, exist_ok=True)
            (root / f"p{page}" / f"w{word}.txt").write_text("\n".join(lines) + "\n")
    cfg = as_data_config(
        dataset="gw_online", root=str(root), cache_dir=str(tmp_path / "cache"), split_seed=0
    )
    folder = pipeline.prepare(cfg, progress=False)
    skipped = _skipped(folder)
    assert list(skipped) == ["p0/w1.txt"]
    assert "pen offset of 1e+30" in skipped["p0/w1.txt"]
    train = FrameStore(folder / "train.h5")
    assert train.std < 100


def test_an_empty_validation_split_stops_training_naming_the_split(tmp_path, capsys):
    from vrnn_lightning.fit import main as fit_main

    root = tmp_path / "corpus"
    _speaker_corpus(root)
    for i in range(2):  # split_seed 0 makes e the valid speaker: all of its files are bad
        (root / f"e_{i}.wav").write_bytes(b"RIFF....WAVEfmt nonsense")
    code = fit_main(
        tiny(
            tmp_path,
            "data.dataset=audio_folder",
            f"data.root={root}",
            f"data.sample_rate={RATE}",
            "data.frame_size=50",
            "data.speaker_pattern=^(\\w+?)_",
            "data.split_seed=0",
            "data.valid_fraction=0.2",
            "data.test_fraction=0.2",
            "trainer.max_epochs=1",
            f"out_dir={tmp_path / 'run'}",
        )
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "the valid split has no usable sequence (every one of its 2 files was skipped" in err
    assert "trainer.limit_val_batches=0" in err
    assert not list((tmp_path / "run").glob("checkpoints/*.ckpt"))


def _speaker_corpus(root: Path) -> None:
    root.mkdir(parents=True)
    for spk in "abcde0":
        for i in range(2):
            sf.write(root / f"{spk}_{i}.wav", _wave(ord(spk) + i), RATE, subtype="PCM_16")


def test_odd_file_system_entries_are_reported_skipped_sources(tmp_path, monkeypatch):
    root = tmp_path / "corpus"
    _speaker_corpus(root)
    sub = root / "sub"
    sub.mkdir()
    sf.write(sub / "a_sub.wav", _wave(7), RATE, subtype="PCM_16")
    with open(bytes(root) + b"/a_\xff.wav", "wb") as f:  # a Latin-1 name on a UTF-8 system
        f.write((root / "a_0.wav").read_bytes())
    (root / "a_gone.wav").symlink_to(tmp_path / "nowhere.wav")
    (sub / "loop").symlink_to(root)
    locked = root / "locked"
    locked.mkdir()
    sf.write(locked / "a_locked.wav", _wave(8), RATE, subtype="PCM_16")
    scandir = os.scandir

    def unreadable(path="."):  # chmod 000 does not stop root: refuse it here
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return scandir(path)

    monkeypatch.setattr("os.scandir", unreadable)
    folder = pipeline.prepare(_cfg(tmp_path), progress=False)
    skipped = _skipped(folder)
    assert skipped == {
        "a_\\xff.wav": "file name is not valid UTF-8; rename the file",
        "a_gone.wav": f"broken symbolic link (to {tmp_path / 'nowhere.wav'})",
        "sub/loop": "a link to a folder already listed (a loop?); left out",
        "locked": "folder cannot be read (Permission denied)",
    }
    names = [n for s in ("train", "valid", "test") for n in FrameStore(folder / f"{s}.h5").names]
    expected = [f"{s}_{i}.wav" for s in "abcde0" for i in range(2)] + ["sub/a_sub.wav"]
    assert sorted(names) == sorted(expected)  # each file once
    assert "a_\\xff.wav" in (folder / "report.txt").read_text()


def test_a_rerun_after_a_failed_report_writes_it(tmp_path, monkeypatch):
    _speaker_corpus(tmp_path / "corpus")
    cfg = _cfg(tmp_path)

    write_text = Path.write_text

    def full_disk(self, *args, **kwargs):  # the disk fills up as report.txt is written
        if self.name.startswith("report.txt"):
            raise OSError(28, "No space left on device")
        return write_text(self, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(Path, "write_text", full_disk)
        with pytest.raises(OSError):
            pipeline.prepare(cfg, progress=False)
    folder = pipeline.prepare(cfg, progress=False)  # the stores are reused
    assert json.loads((folder / "report.json").read_text())["splits"]["train"]["sequences"] == 8
    assert "train: 8 sequences" in (folder / "report.txt").read_text()


# ---------------------------------------------------------------- a full disk


def test_a_full_disk_is_exit_2_with_no_unfinished_store(tmp_path, monkeypatch, capsys):
    from collections import namedtuple

    from vrnn_lightning import prepare

    _speaker_corpus(tmp_path / "corpus")
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(
        "vrnn_lightning.data.store.shutil.disk_usage", lambda p: usage(2 << 20, 1 << 20, 1 << 20)
    )
    cfg = _cfg(tmp_path)
    args = [f"data.{k}={v}" for k, v in cfg.__dict__.items() if v is not None]
    assert prepare.main(args) == 2
    err = capsys.readouterr().err
    assert "the disk is full: 1.0 MB free" in err and "data.cache_dir" in err
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]


def _small_tmpfs(path: Path, size: str) -> bool:
    path.mkdir()
    if os.geteuid() != 0:
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)])
    return done.returncode == 0


@pytest.mark.slow  # real data on a real (tiny) disk
@pytest.mark.skipif(not FSDD_DIR.is_dir(), reason="../shared/data/fsdd is not available")
def test_a_really_full_disk_is_exit_2_not_a_segfault(tmp_path):
    """On a 2 MB tmpfs (root only): h5py meeting ENOSPC crashed the process (exit 139)."""
    full = tmp_path / "full"
    if not _small_tmpfs(full, "2m"):
        pytest.skip("needs root to mount a small tmpfs")
    try:
        root = fsdd_subset(tmp_path / "fsdd", 300)
        args = ["data.dataset=audio_folder", f"data.root={root}", f"data.cache_dir={full}"]
        done = subprocess.run(
            [sys.executable, "-m", "vrnn_lightning.prepare", *args, "data.sample_rate=8000"],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=Path(__file__).resolve().parents[1],
        )
        assert done.returncode == 2, done.stderr[-2000:]
        assert "the disk is full" in done.stderr
        assert not list(full.rglob("*.tmp-*"))
    finally:
        subprocess.run(["umount", str(full)])


def test_a_checkpoint_cut_short_by_a_full_disk_leaves_the_previous_one(tmp_path, monkeypatch):
    from vrnn_lightning.checkpoint_io import AtomicCheckpointIO

    io = AtomicCheckpointIO()
    path = tmp_path / "checkpoints" / "best.ckpt"
    io.save_checkpoint({"step": 1, "w": torch.ones(3)}, path)
    save = torch.save

    def full_disk(obj, f, *args, **kwargs):
        save(obj, f, *args, **kwargs)
        f.truncate(10)  # what made it to disk
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("vrnn_lightning.checkpoint_io.torch.save", full_disk)
    with pytest.raises(DiskFull, match="the disk is full: checkpoint best.ckpt was not written"):
        io.save_checkpoint({"step": 2, "w": torch.zeros(3)}, path)
    assert torch.load(path, weights_only=True)["step"] == 1
    assert [p.name for p in path.parent.iterdir()] == ["best.ckpt"]


def test_a_full_disk_at_checkpoint_time_is_exit_2_keeping_the_checkpoints(
    tmp_path, monkeypatch, capsys
):
    from vrnn_lightning.fit import main as fit_main

    run = tmp_path / "run"
    assert fit_main(tiny(tmp_path, f"out_dir={run}", "trainer.max_epochs=1")) == 0
    save = torch.save

    def full_disk(obj, f, *args, **kwargs):
        save(obj, f, *args, **kwargs)
        f.truncate(10)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("vrnn_lightning.checkpoint_io.torch.save", full_disk)
    capsys.readouterr()
    code = fit_main(tiny(tmp_path, f"out_dir={run}", "ckpt_path=last", "trainer.max_epochs=2"))
    assert code == 2
    assert "the disk is full: checkpoint" in capsys.readouterr().err
    for ckpt in (run / "checkpoints").iterdir():  # every file there loads: none truncated
        assert "state_dict" in torch.load(ckpt, weights_only=True)


def test_training_writes_checkpoints_atomically(tmp_path):
    from vrnn_lightning.checkpoint_io import AtomicCheckpointIO
    from vrnn_lightning.training import train

    seen = []

    class Probe(L.Callback):
        def on_fit_start(self, trainer, module):
            seen.append(trainer.strategy.checkpoint_io)

    cfg = tiny_config(
        f"data.cache_dir={tmp_path / 'cache'}",
        f"out_dir={tmp_path / 'run'}",
        "trainer.max_steps=1",
        "trainer.limit_val_batches=1",
    )
    train(cfg, extra_callbacks=[Probe()])
    assert isinstance(seen[0], AtomicCheckpointIO)
    assert list((tmp_path / "run" / "checkpoints").glob("*.ckpt"))
