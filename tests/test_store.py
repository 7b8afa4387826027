"""The HDF5 frame store: writer/reader round trip, statistics, atomicity, pickling."""

from __future__ import annotations

import pickle

import h5py
import numpy as np
import pytest
from test_prepare import corpus, data_cfg, write_audio_corpus  # noqa: F401  (fixture)

from vrnn_lightning.data import pipeline
from vrnn_lightning.data.store import (
    INT16_SCALE,
    FrameStore,
    RunningStats,
    StoreWriter,
    convert_dtype,
    read_header,
)


def _sequences(rng, dtype, dim, n=7):
    out = []
    for _ in range(n):
        t = int(rng.integers(1, 1500))
        if dtype == np.int16:
            out.append(rng.integers(-32768, 32767, size=(t, dim), dtype=np.int16))
        else:
            out.append(rng.standard_normal((t, dim)).astype(np.float32))
    return out


@pytest.mark.parametrize("dtype", [np.int16, np.float32])
@pytest.mark.parametrize("compression", [None, "lzf", "gzip"])
def test_round_trip(tmp_path, dtype, compression):
    rng = np.random.default_rng(0)
    seqs = _sequences(rng, dtype, dim=4)  # ~5000 frames: several flushes of 8 chunks
    names = [f"spk/é_{i}.wav" for i in range(len(seqs))]
    path = tmp_path / "train.h5"
    attrs = {"kind": "audio", "sample_rate": 8000, "frame_size": 4, "mean": 1.5, "std": 2.0}
    with StoreWriter(path, dim=4, dtype=dtype, compression=compression, attrs=attrs) as w:
        for name, s in zip(names, seqs, strict=True):
            w.append(name, s)
        assert not path.exists()  # nothing at the final name before finish
        w.finish(split="train", skipped=[{"file": "x.wav", "reason": "empty"}], seconds=1.0)

    store = FrameStore(path)
    assert store.dtype == dtype and store.dim == 4 and len(store) == len(seqs)
    assert store.names == names
    np.testing.assert_array_equal(store.offsets, np.cumsum([0] + [len(s) for s in seqs]))
    for i, s in enumerate(seqs):
        np.testing.assert_array_equal(store.raw(i), s)
        np.testing.assert_array_equal(store.raw(i, 1, 3), s[1:3])
    np.testing.assert_allclose(store.window(2, 0, 5), (seqs[2][:5].astype(np.float32) - 1.5) / 2)
    assert store.window(0, len(seqs[0]) - 2, 10).shape == (2, 4)  # short at the end
    head = read_header(path)
    assert head["complete"] and head["sequences"] == len(seqs)
    assert head["n_frames"] == sum(map(len, seqs)) and head["sample_rate"] == 8000
    assert head["skipped"] == [{"file": "x.wav", "reason": "empty"}]
    assert head["amplitude_scale"] == (INT16_SCALE if dtype == np.int16 else 1.0)
    with h5py.File(path) as f:
        assert f["frames"].chunks[1] == 4 and 256 <= f["frames"].chunks[0] <= 16384
        assert f["frames"].compression == compression
    with pytest.raises(IndexError, match="out of range"):
        store.raw(len(seqs))


def test_unfinished_writer_leaves_nothing(tmp_path):
    path = tmp_path / "train.h5"
    writer = StoreWriter(path, dim=2, dtype=np.float32, compression=None, attrs={})
    with pytest.raises(RuntimeError), writer as w:
        w.append("a", np.zeros((5, 2), np.float32))
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    assert read_header(path) is None


def test_file_without_complete_mark_is_refused(tmp_path):
    path = tmp_path / "train.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("frames", data=np.zeros((3, 2)))
    assert read_header(path) is None
    with pytest.raises(OSError, match="not a finished frame store"):
        FrameStore(path)


def test_running_stats():
    rng = np.random.default_rng(1)
    a, b = rng.normal(3, 2, (50, 10)), rng.normal(3, 2, (70, 10))
    s = RunningStats("audio")
    s.update(a.astype(np.float32))
    s.update(b.astype(np.float32))
    x = np.concatenate([a, b]).astype(np.float32).astype(np.float64)
    assert s.result() == pytest.approx((x.mean(), x.std()), rel=1e-9)

    steps = rng.normal(1, 3, (100, 3))
    steps[:, 0] = rng.integers(0, 2, 100)
    s = RunningStats("strokes")
    s.update(steps)
    d = steps[:, 1:]
    paper_mean = d.sum() / 100  # docs/paper.md, Normalisation: both coordinates' sums / steps
    paper_std = np.sqrt((d**2).sum() / 100 - paper_mean**2)
    assert s.result("paper") == pytest.approx((paper_mean, paper_std))
    assert s.result("pooled") == pytest.approx((d.mean(), d.std()))
    with pytest.raises(ValueError, match="zero variance"):
        z = RunningStats("audio")
        z.update(np.ones((4, 4)))
        z.result()


def test_convert_dtype_keeps_full_scale():
    f = np.array([-1.0, -0.5, 0.0, 0.5, 0.999], np.float32)
    i = convert_dtype(f, np.int16)
    assert i.dtype == np.int16 and i.tolist() == [-32768, -16384, 0, 16384, 32735]
    np.testing.assert_allclose(convert_dtype(i, np.float32), f, atol=1 / 32768)
    assert convert_dtype(np.array([2.0]), np.int16).tolist() == [32767]  # clipped


def test_stats_come_from_train_only(tmp_path, corpus):  # noqa: F811
    arrays = write_audio_corpus(tmp_path / "corpus")
    # a valid file far off the train distribution must not move the statistics
    np.save(tmp_path / "corpus" / "valid_loud.npy", np.full(5000, 30000, np.int16))
    folder = pipeline.prepare(data_cfg(tmp_path), progress=False)
    train = np.concatenate(
        [a[: len(a) // 50 * 50] for n, a in arrays.items() if n.startswith("train")]
    ).astype(np.float64)
    for split in ("train", "valid", "test"):
        store = FrameStore(folder / f"{split}.h5")
        assert store.mean == pytest.approx(train.mean(), rel=1e-12)
        assert store.std == pytest.approx(train.std(), rel=1e-12)
        assert store.attrs["kind"] == "audio" and store.attrs["frame_size"] == 50


def test_float_audio_is_stored_float32(tmp_path, corpus):  # noqa: F811
    write_audio_corpus(tmp_path / "corpus", dtype=np.float32)
    folder = pipeline.prepare(data_cfg(tmp_path), progress=False)
    for split in ("train", "valid", "test"):
        store = FrameStore(folder / f"{split}.h5")
        assert store.dtype == np.float32 and store.amplitude_scale == 1.0


def test_resampled_16bit_audio_is_stored_int16(tmp_path):
    # 8 kHz 16-bit WAVs (as FSDD) prepared at 16 kHz: int16, as the paper's ffmpeg pipeline
    sf = pytest.importorskip("soundfile")
    from vrnn_lightning.data.audio import read_audio
    from vrnn_lightning.data.store import as_data_config

    root = tmp_path / "wavs"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        sf.write(root / f"{i}.wav", rng.uniform(-0.5, 0.5, 3000), 8000, subtype="PCM_16")
    cfg = as_data_config(
        dataset="audio_folder", root=str(root), cache_dir=str(tmp_path / "cache"), frame_size=50
    )
    folder = pipeline.prepare(cfg, progress=False)
    for split in ("train", "valid", "test"):
        store = FrameStore(folder / f"{split}.h5")
        assert store.dtype == np.int16 and store.amplitude_scale == INT16_SCALE
        assert store.attrs["sample_rate"] == 16000
        wave = read_audio(root / store.names[0], 16000)
        np.testing.assert_array_equal(store.raw(0), wave[: len(wave) // 50 * 50].reshape(-1, 50))


def test_reader_pickles_without_its_handle_and_denormalises(tmp_path, corpus):  # noqa: F811
    write_audio_corpus(tmp_path / "corpus")
    folder = pipeline.prepare(data_cfg(tmp_path), progress=False)
    store = FrameStore(folder / "train.h5")
    x = store.sequence(1)  # opens the file
    assert store._file is not None
    copy = pickle.loads(pickle.dumps(store))
    assert copy._file is None
    np.testing.assert_array_equal(copy.sequence(1), x)
    assert x.dtype == np.float32
    assert abs(float(np.concatenate([store.sequence(i) for i in range(len(store))]).mean())) < 1e-4
    # back to amplitude: int16 value / 32768
    np.testing.assert_allclose(store.denormalise(x), store.raw(1) / INT16_SCALE, atol=1e-6)
    store.close()


def test_reader_keeps_one_dataset_so_the_chunk_cache_survives(tmp_path):
    path = tmp_path / "train.h5"
    with StoreWriter(path, dim=2, dtype=np.float32, compression="lzf", attrs={}) as w:
        w.append("a", np.ones((600, 2), np.float32))
        w.finish(kind="audio", mean=0.0, std=1.0)
    store = FrameStore(path)
    store.raw(0, 0, 10)
    first = store._frames()
    store.raw(0, 10, 20)
    assert store._frames() is first  # a re-opened Dataset would start with an empty cache
