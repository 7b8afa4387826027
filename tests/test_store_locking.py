"""Frame stores on a file system without file locks (Lustre, NFS): finished stores are read
without HDF5's lock there, and a lock failure is said as such (the file, HDF5_USE_FILE_LOCKING,
data.cache_dir), never taken for a store to prepare again."""

from __future__ import annotations

import errno
from pathlib import Path

import h5py
import numpy as np
import pytest
from test_prepare import corpus, data_cfg, write_audio_corpus  # noqa: F401  (fixture)

from vrnn_lightning import prepare as prepare_cmd
from vrnn_lightning.data import pipeline, store
from vrnn_lightning.data.store import FrameStore, StoreLocked, StoreWriter, is_finished, read_header

REAL_FILE = h5py.File


def _lock_error(mode: str) -> OSError:
    # as h5py raises it when HDF5's flock() fails on Lustre (h5py issues #1101, #1082 show
    # the same text with errno 37 on NFS): errno set, HDF5's message in the text
    verb = "open" if mode in ("r", "r+") else "create"
    return OSError(
        errno.ENOSYS,
        f"Unable to synchronously {verb} file (unable to lock file, errno = 38, "
        "error message = 'Function not implemented')",
    )


def no_flock(always: bool = False):
    """h5py.File on a file system without flock(): any open that locks fails (``always``:
    even one asked not to lock)."""

    def File(name, mode="r", *args, **kwargs):
        missing = mode == "r" and not Path(name).exists()  # HDF5 says so before it locks
        if not missing and (always or kwargs.get("locking", True) is not False):
            raise _lock_error(mode)
        return REAL_FILE(name, mode, *args, **kwargs)

    return File


def _finished_store(tmp_path):
    path = tmp_path / "train.h5"
    attrs = {"kind": "audio", "sample_rate": 8000, "frame_size": 4, "mean": 0.0, "std": 1.0}
    with StoreWriter(path, dim=4, dtype=np.int16, compression=None, attrs=attrs) as w:
        w.append("a", np.arange(40, dtype=np.int16).reshape(10, 4))
        w.finish(split="train", fingerprint="f" * 64)
    return path


def test_a_finished_store_is_read_without_a_lock(tmp_path, monkeypatch):
    path = _finished_store(tmp_path)
    monkeypatch.setattr(store.h5py, "File", no_flock())
    head = read_header(path)
    assert head is not None and head["sequences"] == 1  # was None: "not prepared"
    assert is_finished(path, "f" * 64)
    frames = FrameStore(path)
    np.testing.assert_array_equal(frames.raw(0), np.arange(40).reshape(10, 4))
    assert frames.names == ["a"]


def test_a_lock_failure_is_never_taken_for_a_store_to_prepare(tmp_path, monkeypatch):
    path = _finished_store(tmp_path)
    monkeypatch.setattr(store.h5py, "File", no_flock(always=True))
    with pytest.raises(StoreLocked) as caught:
        read_header(path)
    message = str(caught.value)
    assert str(path) in message and "errno = 38" in message
    assert "HDF5_USE_FILE_LOCKING=FALSE" in message and "data.cache_dir" in message
    with pytest.raises(StoreLocked):
        is_finished(path, "f" * 64)
    # a missing file is still just missing
    assert read_header(tmp_path / "nowhere.h5") is None


def test_a_store_open_unlocked_in_this_process_is_opened_again(tmp_path):
    # real HDF5: a second open with the other locking setting fails ("file locking flag
    # values don't match"); a FrameStore reading on Lustre holds its file open unlocked
    path = _finished_store(tmp_path)
    with REAL_FILE(path, "r", locking=False):
        assert read_header(path)["sequences"] == 1
        assert FrameStore(path).raw(0).shape == (10, 4)


def test_nfs_without_a_lock_daemon_is_a_lock_failure_too(tmp_path, monkeypatch):
    def File(name, mode="r", *args, **kwargs):
        raise OSError(errno.ENOLCK, "Unable to synchronously open file (unable to lock file, "
                      "errno = 37, error message = 'No locks available')")  # fmt: skip

    monkeypatch.setattr(store.h5py, "File", File)
    with pytest.raises(StoreLocked, match="HDF5_USE_FILE_LOCKING"):
        read_header(tmp_path / "train.h5")


def test_writing_without_locks_says_what_to_do_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(store.h5py, "File", no_flock())
    path = tmp_path / "train.h5"
    with pytest.raises(StoreLocked) as caught:
        StoreWriter(path, dim=2, dtype=np.float32, compression=None, attrs={})
    message = str(caught.value)
    assert str(path) in message
    assert "HDF5_USE_FILE_LOCKING=FALSE" in message and "data.cache_dir" in message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.usefixtures("corpus")
def test_vrnn_prepare_reuses_a_store_and_exits_2_when_it_must_write(tmp_path, monkeypatch, capsys):
    write_audio_corpus(tmp_path / "corpus")
    folder = pipeline.prepare(data_cfg(tmp_path), progress=False)
    monkeypatch.setattr(store.h5py, "File", no_flock())
    args = [f"data.root={tmp_path / 'corpus'}", "data.dataset=audio_folder", "data.frame_size=50"]
    args.append("data.seq_len=8")
    # finished stores: reused (before, each was "not prepared" and the rewrite crashed)
    assert prepare_cmd.main([*args, f"data.cache_dir={tmp_path / 'cache'}"]) == 0
    assert f"reusing {folder}" in capsys.readouterr().out.replace("\n", "")
    # a new store to write: exit 2, the file and the two ways out
    assert prepare_cmd.main([*args, f"data.cache_dir={tmp_path / 'other'}"]) == 2
    err = capsys.readouterr().err.replace("\n", "")
    assert "other" in err and "train.h5" in err and "HDF5_USE_FILE_LOCKING=FALSE" in err
