"""vrnn-prepare: reuse and rebuild, atomic writes, bad files, corpus errors, real corpora."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
from conftest import FSDD_DIR, GW_DIR, fsdd_subset

from vrnn_lightning import prepare as prepare_cmd
from vrnn_lightning.data import pipeline
from vrnn_lightning.data.source import BadInput, CorpusError, Source
from vrnn_lightning.data.store import FrameStore, as_data_config, is_finished

# ---------------------------------------------------------------- a tiny corpus of .npy files


def _find_sources(cfg):
    root = Path(cfg.root)
    if not root.is_dir():
        raise CorpusError(f"data.root '{root}' is not a folder of .npy files")
    files = sorted(root.glob("*.npy"))
    if not files:
        raise CorpusError(f"data.root '{root}' holds no .npy files")
    out = {"train": [], "valid": [], "test": []}
    for p in files:
        out[p.name.split("_")[0]].append(Source(name=p.name, path=p))
    return out


def _read(source, cfg):
    if "bad" in source.name:
        raise BadInput("corrupt header")
    if "kill" in source.name:
        raise KeyboardInterrupt
    return np.load(source.path)


def tiny_corpus(kind="audio"):
    return SimpleNamespace(OBSERVATION=kind, find_sources=_find_sources, read=_read)


@pytest.fixture
def corpus(monkeypatch):
    """Installs the tiny corpus as every dataset name; returns a setter for its kind."""
    state = {"module": tiny_corpus()}
    monkeypatch.setattr(pipeline, "get_corpus", lambda name: state["module"])
    monkeypatch.setattr("vrnn_lightning.data.datamodule.get_corpus", lambda name: state["module"])

    def use(kind):
        state["module"] = tiny_corpus(kind)

    return use


def write_audio_corpus(root: Path, n_train=6, n_valid=2, n_test=2, dtype=np.int16, seed=0):
    """Waveforms of varied lengths; returns {name: array}."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, n in (("train", n_train), ("valid", n_valid), ("test", n_test)):
        for i in range(n):
            length = int(rng.integers(250, 2000))
            if dtype == np.int16:
                a = rng.integers(-3000, 3000, size=length).astype(np.int16) + 100 * (i + 1)
            else:
                a = (rng.standard_normal(length) * 0.1).astype(np.float32)
            name = f"{split}_{i:03d}.npy"
            np.save(root / name, a)
            arrays[name] = a
    return arrays


def data_cfg(tmp_path, **kw):
    base = dict(
        dataset="audio_folder",
        root=str(tmp_path / "corpus"),
        cache_dir=str(tmp_path / "cache"),
        frame_size=50,
        seq_len=8,
    )
    return as_data_config(base, **kw)


# ---------------------------------------------------------------- tests


def test_prepare_stores_every_good_file_and_reports_bad_ones(tmp_path, corpus):
    arrays = write_audio_corpus(tmp_path / "corpus")
    root = tmp_path / "corpus"
    np.save(root / "train_bad.npy", np.zeros(500, np.int16))  # read raises BadInput
    np.save(root / "train_short.npy", np.zeros(20, np.int16))  # < one frame of 50
    np.save(root / "valid_nan.npy", np.array([0.0, np.nan] * 100, np.float32))
    folder = pipeline.prepare(data_cfg(tmp_path), progress=False)

    train = FrameStore(folder / "train.h5")
    assert train.names == [f"train_{i:03d}.npy" for i in range(6)]
    for i, name in enumerate(train.names):
        a = arrays[name]
        n = len(a) // 50
        np.testing.assert_array_equal(train.raw(i), a[: n * 50].reshape(n, 50))
    report = json.loads((folder / "report.json").read_text())
    skipped = {x["file"]: x["reason"] for s in report["splits"].values() for x in s["skipped"]}
    assert set(skipped) == {"train_bad.npy", "train_short.npy", "valid_nan.npy"}
    assert skipped["train_bad.npy"] == "corrupt header"
    assert "shorter than one frame" in skipped["train_short.npy"]
    assert "non-finite" in skipped["valid_nan.npy"]
    text = (folder / "report.txt").read_text()
    assert "train_short.npy" in text and "valid_nan.npy" in text
    assert report["splits"]["valid"]["sequences"] == 2


def test_finished_store_is_reused_fast_and_stale_one_rebuilt(tmp_path, corpus):
    write_audio_corpus(tmp_path / "corpus")
    cfg = data_cfg(tmp_path)
    folder = pipeline.prepare(cfg, progress=False)
    mtime = (folder / "train.h5").stat().st_mtime_ns

    t0 = time.perf_counter()
    again = pipeline.prepare(cfg, progress=False)
    assert time.perf_counter() - t0 < 0.5
    assert again == folder and (folder / "train.h5").stat().st_mtime_ns == mtime

    # loader-only settings do not change the store; content settings do
    assert pipeline.prepare(data_cfg(tmp_path, seq_len=99), progress=False) == folder
    assert pipeline.prepare(data_cfg(tmp_path, frame_size=40), progress=False) != folder

    # a changed source file makes the store stale: a new fingerprint, rebuilt
    src = tmp_path / "corpus" / "train_000.npy"
    np.save(src, np.arange(1000, dtype=np.int16))
    os.utime(src, ns=(mtime + 10**9, mtime + 10**9))
    rebuilt = pipeline.prepare(cfg, progress=False)
    assert rebuilt != folder
    np.testing.assert_array_equal(
        FrameStore(rebuilt / "train.h5").raw(0), np.arange(1000).reshape(20, 50)
    )


def test_unfinished_store_in_place_is_rebuilt(tmp_path, corpus):
    write_audio_corpus(tmp_path / "corpus")
    cfg = data_cfg(tmp_path)
    folder = pipeline.prepare(cfg, progress=False)
    with h5py.File(folder / "valid.h5", "r+") as f:  # as if written by a broken writer
        del f.attrs["complete"]
    assert not is_finished(
        folder / "valid.h5", FrameStore(folder / "train.h5").attrs["fingerprint"]
    )
    pipeline.prepare(cfg, progress=False)
    assert FrameStore(folder / "valid.h5").attrs["complete"]


@pytest.mark.parametrize("workers", [1, 2, "in a worker"])
def test_interrupt_leaves_no_finished_store_and_rerun_completes(tmp_path, corpus, workers):
    write_audio_corpus(tmp_path / "corpus", n_train=8)
    kill = tmp_path / "corpus" / "train_004_kill.npy"  # sorted into the middle of train
    np.save(kill, np.zeros(500, np.int16))
    # "in a worker": raised by a pool worker's read, re-raised in the parent (not a hang)
    cfg = data_cfg(tmp_path, prepare_workers=2 if workers == "in a worker" else 1)
    if workers == 2:  # the interrupt arrives in the parent, as Ctrl-C would
        real = pipeline._load_all

        def interrupted(sources, reader, n):
            for k, item in enumerate(real(sources, reader, 2)):
                if k == 4:
                    raise KeyboardInterrupt
                yield item

        pipeline._load_all = interrupted
    try:
        with pytest.raises(KeyboardInterrupt):
            pipeline.prepare(cfg, progress=False)
    finally:
        if workers == 2:
            pipeline._load_all = real
    (folder,) = (tmp_path / "cache").iterdir()
    assert list(folder.glob("*.h5")) == []  # nothing that looks finished
    assert list(folder.glob("*.tmp-*")) == []  # and the temporary was removed

    kill.unlink()
    folder = pipeline.prepare(cfg, progress=False)
    assert len(FrameStore(folder / "train.h5")) == 8


def test_parallel_preparation_matches_serial(tmp_path, corpus, monkeypatch):
    write_audio_corpus(tmp_path / "corpus", n_train=20, n_valid=5, n_test=5)
    np.save(tmp_path / "corpus" / "train_007_bad.npy", np.zeros(500, np.int16))
    monkeypatch.setattr(pipeline, "BATCH_SOURCES", 3)  # many runs of sources in flight
    serial = pipeline.prepare(data_cfg(tmp_path), progress=False)
    parallel = pipeline.prepare(
        data_cfg(tmp_path, prepare_workers=2, cache_dir=str(tmp_path / "cache2")), progress=False
    )
    assert parallel.name == serial.name  # prepare_workers does not change the fingerprint
    for split in ("train", "valid", "test"):
        a, b = FrameStore(serial / f"{split}.h5"), FrameStore(parallel / f"{split}.h5")
        assert a.names == b.names and len(a) > 1
        np.testing.assert_array_equal(a.offsets, b.offsets)
        for i in range(len(a)):
            np.testing.assert_array_equal(a.raw(i), b.raw(i))
        assert (a.mean, a.std, a.dtype) == (b.mean, b.std, b.dtype)
        assert a.attrs["skipped"] == b.attrs["skipped"]
    assert FrameStore(parallel / "train.h5").attrs["skipped"][0]["file"] == "train_007_bad.npy"


def test_progress_shows_files_hours_rate_and_time_left(tmp_path, corpus):
    import io

    from rich.console import Console

    write_audio_corpus(tmp_path / "corpus")
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=160, color_system=None)
    pipeline.prepare(data_cfg(tmp_path, prepare_workers=2), console=console)
    text = out.getvalue()
    assert "6/6 files" in text and "2/2 files" in text
    assert " h " in text and "x real time" in text
    assert "0:00:00" in text  # time left


def test_corpus_error_exits_2_with_its_message(tmp_path, corpus, capsys):
    missing = tmp_path / "nowhere"
    code = prepare_cmd.main(
        [f"data.root={missing}", f"data.cache_dir={tmp_path / 'cache'}", "data.dataset=timit"]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert f"data.root '{missing}' is not a folder" in err


def test_all_bad_train_split_is_a_corpus_error(tmp_path, corpus, capsys):
    root = tmp_path / "corpus"
    root.mkdir()
    np.save(root / "train_bad.npy", np.zeros(500, np.int16))
    code = prepare_cmd.main([f"data.root={root}", f"data.cache_dir={tmp_path / 'cache'}"])
    assert code == 2
    assert "no usable train sequence" in capsys.readouterr().err


def test_config_error_exits_2(tmp_path, capsys):
    assert prepare_cmd.main(["data.no_such_key=1"]) == 2
    assert "no_such_key" in capsys.readouterr().err


def test_cli_prepares_and_prints_summary(tmp_path, corpus, capsys):
    write_audio_corpus(tmp_path / "corpus")
    code = prepare_cmd.main(
        [
            f"data.root={tmp_path / 'corpus'}",
            f"data.cache_dir={tmp_path / 'cache'}",
            "data.frame_size=50",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "train" in out and "normalisation (train)" in out


# ---------------------------------------------------------------- real corpora


@pytest.mark.slow
@pytest.mark.skipif(not FSDD_DIR.is_dir(), reason="../shared/data/fsdd is not available")
def test_real_fsdd_round_trip(tmp_path):
    sf = pytest.importorskip("soundfile")
    root = fsdd_subset(tmp_path / "fsdd", 50, every=50)
    cfg = as_data_config(
        dataset="audio_folder",
        root=str(root),
        cache_dir=str(tmp_path / "cache"),
        sample_rate=8000,
        frame_size=200,
    )
    folder = pipeline.prepare(cfg, progress=False)
    total = 0
    for split in ("train", "valid", "test"):
        store = FrameStore(folder / f"{split}.h5")
        total += len(store)
        for i in (0, len(store) - 1):
            wav, sr = sf.read(root / store.names[i], dtype="int16")
            assert sr == 8000
            n = len(wav) // 200
            raw = store.raw(i)
            assert raw.dtype == np.int16
            np.testing.assert_array_equal(raw, wav[: n * 200].reshape(n, 200))
    assert total == 50
    train = FrameStore(folder / "train.h5")
    x = np.concatenate([train.raw(i).ravel() for i in range(len(train))]).astype(np.float64)
    assert train.mean == pytest.approx(x.mean(), abs=1e-6)
    assert train.std == pytest.approx(x.std(), rel=1e-9)


def _read_gw(path: Path) -> np.ndarray:
    """(x, y, pen) points of a GW word file, read independently of the corpus module."""
    lines = path.read_text().splitlines()[1:]
    return np.array([[float(v) for v in ln.split()] for ln in lines if ln.strip()])


@pytest.mark.slow
@pytest.mark.skipif(not GW_DIR.is_dir(), reason="../shared/data/gw-online is not available")
def test_real_gw_online_round_trip(tmp_path):
    cfg = as_data_config(dataset="gw_online", root=str(GW_DIR), cache_dir=str(tmp_path / "cache"))
    folder = pipeline.prepare(cfg, progress=False)
    counts = 0
    for split in ("train", "valid", "test"):
        store = FrameStore(folder / f"{split}.h5")
        assert store.attrs["kind"] == "strokes" and store.dim == 3
        assert store.dtype == np.float32
        counts += len(store)
        for i in (0, len(store) - 1):
            pts = _read_gw(GW_DIR / store.names[i])
            # step t: the pen bit of point t and its offset from point t - 1
            expected = np.column_stack([pts[1:, 2], np.diff(pts[:, :2], axis=0)])
            np.testing.assert_allclose(store.raw(i), expected, rtol=1e-6)
    assert counts + sum(len(s["skipped"]) for s in _report(folder)["splits"].values()) == 2404
    train = FrameStore(folder / "train.h5")
    d = np.concatenate([train.raw(i)[:, 1:] for i in range(len(train))]).astype(np.float64)
    # the original's scalar pair (docs/paper.md, Normalisation): sums over both
    # coordinates divided by the number of steps
    mean = d.sum() / len(d)
    assert train.mean == pytest.approx(mean, rel=1e-9)
    assert train.std == pytest.approx(np.sqrt((d**2).sum() / len(d) - mean**2), rel=1e-9)
    x = train.sequence(0)
    np.testing.assert_array_equal(x[:, 0], train.raw(0)[:, 0])  # pen bit not normalised
    np.testing.assert_allclose(train.denormalise(x), train.raw(0), atol=1e-3)


def _report(folder: Path) -> dict:
    return json.loads((folder / "report.json").read_text())


def test_temporary_of_a_killed_run_is_removed(tmp_path, corpus):
    write_audio_corpus(tmp_path / "corpus")
    cfg = data_cfg(tmp_path)
    folder = pipeline.locate(cfg)[3]
    folder.mkdir(parents=True)
    dead = 2**22 + 12345  # above the default pid_max: no such process
    leftover = folder / f"train.h5.tmp-{socket.gethostname()}-{dead}"
    leftover.write_bytes(b"half a store")
    other_host = folder / f"train.h5.tmp-elsewhere-{dead}"  # may still be running there
    other_host.write_bytes(b"")
    pipeline.prepare(cfg, progress=False)
    assert not leftover.exists() and other_host.exists()
    assert FrameStore(folder / "train.h5").attrs["complete"]


def test_fingerprint_stats_each_file_once_and_sees_every_change(tmp_path, monkeypatch):
    # Blizzard-like: many sequences per file, one file straddling two splits
    from vrnn_lightning.data import store as store_mod

    root = tmp_path / "corpus"
    root.mkdir()
    files = [root / f"{i}.wav" for i in range(5)]
    for p in files:
        p.write_bytes(b"x")

    def listing(files):
        seqs = [
            Source(f"{p.name}[{a}:{a + 10}]", p, a, a + 10, speaker=p.stem)
            for p in files
            for a in range(0, 3000, 10)
        ]
        return {"train": seqs[:1000], "valid": seqs[1000:1200], "test": seqs[1200:]}

    cfg = as_data_config(dataset="blizzard")
    sources = listing(files)
    calls = []
    real_stat = os.stat
    monkeypatch.setattr(store_mod.os, "stat", lambda p, *a, **k: calls.append(p) or real_stat(p))
    fp = store_mod.fingerprint(cfg, sources, 2)
    monkeypatch.undo()
    assert sorted(map(str, calls)) == sorted(map(str, files))  # 5 stats for 1,500 sources

    assert store_mod.fingerprint(cfg, listing(files), 2) == fp
    assert store_mod.fingerprint(cfg, sources, 3) != fp  # corpus VERSION
    assert store_mod.fingerprint(as_data_config(cfg, frame_size=80), sources, 2) != fp
    moved = sources | {"valid": sources["valid"][:-1]}
    assert store_mod.fingerprint(cfg, moved, 2) != fp  # a source fewer
    regrouped = {"train": sources["train"][:-1], "valid": sources["train"][-1:] + sources["valid"]}
    assert store_mod.fingerprint(cfg, sources | regrouped, 2) != fp  # a source in another split
    st = files[3].stat()
    os.utime(files[3], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert store_mod.fingerprint(cfg, sources, 2) != fp  # a rewritten file
    # the same corpus somewhere else (a moved root) keeps its fingerprint: files are numbered
    os.utime(files[3], ns=(st.st_atime_ns, st.st_mtime_ns))
    moved_root = tmp_path / "moved"
    root.rename(moved_root)
    assert store_mod.fingerprint(cfg, listing([moved_root / p.name for p in files]), 2) == fp
