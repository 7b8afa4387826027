"""The HDF5 frame store: one file per split, written streaming and atomically, read lazily.

Layout of ``<cache_dir>/<dataset>-<fingerprint[:12]>/<split>.h5``:

    frames   (N_frames, D)  int16 (16-bit audio sources, the rule is in data/audio.py) or
                            float32, chunked along time
    offsets  (n_seq + 1,)   int64, sequence i is frames[offsets[i]:offsets[i + 1]]
    names    (n_seq,)       UTF-8, the Source.name of each sequence
    attrs    format_version, kind, sample_rate, frame_size, mean, std, amplitude_scale,
             fingerprint, split, sequences, n_frames, seconds, skipped (JSON), complete;
             kind is the observation (audio or strokes, what x_t is: what_x_is)

Normalisation statistics always come from the train split and are copied into every split's
file, so each file is self-contained. They are applied when reading, which keeps int16 storage.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import os
import shutil
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from omegaconf import DictConfig, OmegaConf

from vrnn_lightning.config import ConfigError, DataConfig
from vrnn_lightning.data.source import CorpusError, Source

# 2: statistics of the stored values (a mixed int16/float corpus had them on the wrong scale)
FORMAT_VERSION = 2
SPLITS = ("train", "valid", "test")
STROKE_STATS = ("paper", "pooled")
INT16_SCALE = 32768.0  # int16 sample value of amplitude 1.0
# Data settings that only change how a finished store is read, never what is in it.
LOADER_KEYS = frozenset(
    {
        "root",
        "download",  # where data.root comes from, not what it holds
        "cache_dir",
        "seq_len",
        "eval_full_sequences",
        "train_full_sequences",
        "streams",
        "norm_stats",  # applied when reading
        "batch_size",
        "eval_batch_size",
        "num_workers",
        "prepare_workers",
    }
)
_CHUNK_BYTES = 1 << 20  # ~1 MB chunks: a few thousand 200-sample int16 frames
_FLUSH_CHUNKS = 8  # frames are buffered and written this many chunks at a time
# Room kept free beyond what a write needs: HDF5's chunk cache and metadata. HDF5 must never
# meet a full disk itself: after a failed write h5py crashes the process (a segmentation
# fault when the file is closed again or at exit), so the writer checks for room first.
_FREE_RESERVE = 4 << 20


class DiskFull(CorpusError):
    """No room on the disk for a store; its temporary file was removed.

    ``hdf5_failed``: HDF5 itself met the full disk (another process filled it between our
    check and the write); h5py cannot be used safely afterwards, so a command ends at once.
    """

    def __init__(self, message: str, hdf5_failed: bool = False):
        super().__init__(message)
        self.hdf5_failed = hdf5_failed


def _out_of_space(err: BaseException) -> bool:
    return getattr(err, "errno", None) == errno.ENOSPC or "No space left on device" in str(err)


class StoreLocked(CorpusError):
    """HDF5 could not lock a store file: the file system (Lustre, NFS, some FUSE mounts) has
    no working file locks. Not a missing or unfinished store."""


# what h5py raises when HDF5's flock() fails, e.g. on Lustre: "OSError: [Errno 38] Unable to
# synchronously open file (unable to lock file, errno = 38, error message = 'Function not
# implemented')"; NFS without a lock daemon gives errno 37 (ENOLCK, 'No locks available')
_LOCK_ERRNOS = {errno.ENOSYS, errno.ENOLCK}
_LOCK_MESSAGES = ("unable to lock file", "file locking disabled")


def _lock_failed(err: BaseException) -> bool:
    text = str(err).lower()
    return getattr(err, "errno", None) in _LOCK_ERRNOS or any(m in text for m in _LOCK_MESSAGES)


def _locking_error(path: Path, err: BaseException) -> StoreLocked:
    return StoreLocked(
        f"{path}: HDF5 cannot lock this file ({err}); its file system has no working file "
        "locks (Lustre and NFS often have none). Set HDF5_USE_FILE_LOCKING=FALSE in the "
        "environment, or put data.cache_dir on a local disk"
    )


def open_finished(path: str | Path, **kwargs) -> h5py.File:
    """A finished store file, opened read-only; without HDF5's file lock where locking fails
    (Lustre, NFS); StoreLocked if it cannot be opened either way.

    Reading a finished store needs no lock: it is never written again (a new store replaces
    it with os.replace) and the lock only guards against a writer. The lock is still tried
    first because HDF5 refuses a second open, in one process, of a file already open with
    the other locking setting ("file locking flag values don't match"): where locks work,
    every open stays as plain h5py makes it; where they fail, every open is unlocked.
    """
    try:
        return h5py.File(path, "r", **kwargs)
    except OSError as err:
        if not (_lock_failed(err) or "flag values don't match" in str(err)):
            raise
        failed = err
    try:
        return h5py.File(path, "r", locking=False, **kwargs)
    except ValueError:  # an h5py built on an HDF5 without the option (< 1.10.7)
        raise _locking_error(Path(path), failed) from None
    except OSError as err:
        if _lock_failed(err):
            raise _locking_error(Path(path), err) from None
        raise


def what_x_is(header: Mapping) -> tuple[str, int]:
    """(observation, x_dim) of a store from its header (or the header a preparation will
    write): "audio", x_t a frame of ``frame_size`` samples; or "strokes", x_t a pen step
    (pen, dx, dy). The one place this rule is written."""
    observation = header["kind"]
    if observation == "audio":
        return observation, int(header["frame_size"])
    if observation == "strokes":
        return observation, 3
    raise ValueError(f"observation kind '{observation}' is not 'audio' or 'strokes'")


def as_data_config(cfg: DataConfig | DictConfig | Mapping | None = None, **overrides) -> DataConfig:
    """A typed ``DataConfig`` from a dataclass, a (Dict)Config or a mapping, plus overrides.

    Unknown keys and wrong types raise ConfigError naming ``data.<key>``.
    """
    base = OmegaConf.structured(DataConfig)
    try:
        if cfg is not None:
            if dataclasses.is_dataclass(cfg):
                cfg = OmegaConf.structured(cfg)
            base = OmegaConf.merge(base, cfg)
        if overrides:
            base = OmegaConf.merge(base, overrides)
    except Exception as err:  # OmegaConf's errors: unknown key, wrong type
        key = getattr(err, "full_key", None) or "?"
        msg = (getattr(err, "msg", None) or str(err)).splitlines()[0]
        raise ConfigError(f"data.{key}: {msg}") from None
    out: DataConfig = OmegaConf.to_object(base)
    if out.stroke_stats not in STROKE_STATS:
        valid = ", ".join(STROKE_STATS)
        raise ConfigError(f"data.stroke_stats: '{out.stroke_stats}' is not valid; valid: {valid}")
    if out.frame_size < 1 or out.seq_len < 1:
        raise ConfigError("data.frame_size and data.seq_len must be >= 1")
    return out


def fingerprint(
    cfg: DataConfig, sources: Mapping[str, list[Source]], corpus_version: Any = None
) -> str:
    """Hash of everything that decides a store's content: the corpus name (and its VERSION, if
    the corpus module defines one), every source (name, range, speaker, seed, and the size and
    mtime of its file) and every data setting except those in LOADER_KEYS.

    Each distinct file is stat'ed once however many sources it holds (Blizzard: ~2,000 0.5 s
    sequences a file), and the sources are hashed as a whole, so reusing a finished store of
    millions of sources costs about a second of Python, not millions of system calls.
    Files are numbered in order of first use, so a corpus moved elsewhere keeps its fingerprint.
    """
    settings = {
        k: v for k, v in dataclasses.asdict(cfg).items() if k not in LOADER_KEYS and k != "dataset"
    }
    h = hashlib.sha256()
    files: dict[Any, int] = {}  # path -> its number
    stats: list[tuple[int, int]] = []  # (size, mtime_ns) of file number i
    for split in sorted(sources):
        rows = []
        for s in sources[split]:
            k = -1
            if s.path is not None:
                k = files.get(s.path)
                if k is None:
                    st = os.stat(s.path)
                    k = files[s.path] = len(stats)
                    stats.append((st.st_size, st.st_mtime_ns))
            rows.append((s.name, s.start, s.stop, s.speaker, s.seed, k))
        h.update(f"{split}:{len(rows)}:".encode())
        h.update(repr(rows).encode())
    head = json.dumps(
        {
            "format_version": FORMAT_VERSION,
            "dataset": cfg.dataset,
            "corpus_version": corpus_version,
            "settings": settings,
            "files": stats,
        },
        sort_keys=True,
        default=str,
    )
    h.update(head.encode())
    return h.hexdigest()


def store_dir(cfg: DataConfig, fp: str) -> Path:
    return Path(cfg.cache_dir) / f"{cfg.dataset}-{fp[:12]}"


def read_header(path: Path) -> dict | None:
    """The attributes of a finished store file, or None if it is missing or unfinished;
    StoreLocked if HDF5 cannot lock it (never reported as a store to prepare again)."""
    try:
        with open_finished(path) as f:
            if not f.attrs.get("complete", False):
                return None
            return {**_attrs(f), "dtype": str(f["frames"].dtype)}
    except (OSError, KeyError):  # StoreLocked is neither: it is raised, never swallowed
        return None


def is_finished(path: Path, fp: str) -> bool:
    head = read_header(path)
    return (
        head is not None and head["fingerprint"] == fp and head["format_version"] == FORMAT_VERSION
    )


def _attrs(f: h5py.File) -> dict:
    out = {}
    for k, v in f.attrs.items():
        out[k] = v.item() if isinstance(v, np.generic) else v
    out["skipped"] = json.loads(out.get("skipped", "[]"))
    return out


def cleanup_temporaries(folder: Path) -> None:
    """Remove temporary files left by preparations on this host that no longer run."""
    host = socket.gethostname()
    for tmp in folder.glob("*.h5.tmp-*"):
        tag = tmp.name.split(".tmp-", 1)[1]
        tmp_host, _, pid = tag.rpartition("-")
        if tmp_host != host or not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            tmp.unlink(missing_ok=True)
        except PermissionError:
            pass  # alive, someone else's


class RunningStats:
    """Streaming float64 sums for the normalisation statistics of one split.

    audio:   scalar mean/std over all samples.
    strokes: one scalar (mean, std) pair for (dx, dy); the pen bit is not normalised.
             rule "paper" reproduces the original code's quirk (docs/paper.md,
             Normalisation): sums over both coordinates divided by the number of steps;
             rule "pooled" divides by 2 * steps.
    """

    def __init__(self, observation: str):
        self.observation = observation
        self.n = 0
        self.s1 = 0.0
        self.s2 = 0.0

    def update(self, frames: np.ndarray) -> None:
        x = frames[:, 1:3] if self.observation == "strokes" else frames
        x = x.astype(np.float64)
        self.n += x.size if self.observation == "audio" else len(x)
        self.s1 += float(x.sum())
        self.s2 += float(np.square(x).sum())

    def result(self, rule: str = "paper") -> tuple[float, float]:
        if self.n == 0:
            raise ValueError("no data to compute statistics from")
        n = self.n * (2 if self.observation == "strokes" and rule == "pooled" else 1)
        mean = self.s1 / n
        var = self.s2 / n - mean * mean
        std = float(np.sqrt(max(var, 0.0)))
        if not std > 0:
            raise ValueError(f"the train split has zero variance (std = {std})")
        return float(mean), std


def convert_dtype(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Cast audio to the store's dtype, keeping int16 full scale == float amplitude 1.0."""
    dtype = np.dtype(dtype)
    if x.dtype == dtype:
        return x
    if dtype == np.int16:
        return np.clip(np.rint(x * INT16_SCALE), -32768, 32767).astype(np.int16)
    if x.dtype == np.int16:
        return (x.astype(np.float32) / INT16_SCALE).astype(dtype)
    return x.astype(dtype)


class StoreWriter:
    """Streams sequences into ``<path>.tmp-<host>-<pid>``; ``finish()`` renames it to ``path``.

    Frames are buffered a few chunks at a time and the dataset grows as they are flushed, so
    memory is bounded by the buffer plus one sequence. Until ``finish`` returns there is no file
    at ``path`` (a previous one is replaced atomically); ``abort`` deletes the temporary.
    """

    def __init__(
        self,
        path: Path,
        *,
        dim: int,
        dtype: np.dtype,
        compression: str | None,
        attrs: Mapping[str, Any],
    ):
        self.path = Path(path)
        self.tmp = self.path.with_name(f"{self.path.name}.tmp-{socket.gethostname()}-{os.getpid()}")
        self.dtype = np.dtype(dtype)
        self.dim = dim
        self.attrs = dict(attrs)
        self.chunk = int(np.clip(_CHUNK_BYTES // (dim * self.dtype.itemsize), 256, 16384))
        try:
            self._file = h5py.File(self.tmp, "w")
        except OSError as err:
            if _lock_failed(err):  # HDF5 locks a file it writes: a clear error, exit 2
                self.tmp.unlink(missing_ok=True)
                raise _locking_error(self.path, err) from None
            raise
        self._frames = self._file.create_dataset(
            "frames",
            shape=(0, dim),
            maxshape=(None, dim),
            dtype=self.dtype,
            chunks=(self.chunk, dim),
            compression=compression,
        )
        self._buffer: list[np.ndarray] = []
        self._buffered = 0
        self._written = 0
        self._hdf5_failed = False
        self.offsets = [0]
        self.names: list[str] = []

    def _make_room(self, nbytes: int) -> None:
        """DiskFull unless ``nbytes`` (and the reserve) fit on the store's disk."""
        free = shutil.disk_usage(self.tmp.parent).free
        need = nbytes + _FREE_RESERVE
        if free < need:
            raise DiskFull(
                f"{self.path.parent}: the disk is full: {free / 2**20:.1f} MB free, "
                f"{need / 2**20:.1f} MB needed to go on writing {self.path.name}. Free some "
                "space or set data.cache_dir to a bigger disk; no unfinished store was left"
            )

    def _hdf5_error(self, err: Exception) -> Exception:
        if not _out_of_space(err):
            return err
        self._hdf5_failed = True
        return DiskFull(
            f"{self.path.parent}: the disk filled up while writing {self.path.name} "
            f"({os.strerror(errno.ENOSPC)}). Free some space or set data.cache_dir to a bigger "
            "disk; "
            "no unfinished store was left",
            hdf5_failed=True,
        )

    @property
    def n_frames(self) -> int:
        return self.offsets[-1]

    def append(self, name: str, frames: np.ndarray) -> np.ndarray:
        """Adds one sequence; returns its frames as stored (in the store's dtype), the values
        a reader will normalise and so the ones the statistics must see."""
        if frames.ndim != 2 or frames.shape[1] != self.dim:
            raise ValueError(f"{name}: frames of shape {frames.shape}, expected (T, {self.dim})")
        frames = convert_dtype(frames, self.dtype)
        self._buffer.append(frames)
        self._buffered += len(frames)
        self.offsets.append(self.offsets[-1] + len(frames))
        self.names.append(name)
        if self._buffered >= self.chunk * _FLUSH_CHUNKS:
            self._flush()
        return frames

    def _flush(self) -> None:
        if not self._buffer:
            return
        block = np.concatenate(self._buffer)
        self._make_room(block.nbytes)
        end = self._written + len(block)
        try:
            self._frames.resize(end, axis=0)
            self._frames[self._written : end] = block
        except (OSError, RuntimeError) as err:
            raise self._hdf5_error(err) from None
        self._written = end
        self._buffer, self._buffered = [], 0

    def finish(self, **attrs: Any) -> Path:
        self._flush()
        self._make_room(8 * len(self.offsets) + sum(len(n) + 16 for n in self.names))
        try:
            self._finish(attrs)
        except (OSError, RuntimeError) as err:
            raise self._hdf5_error(err) from None
        os.replace(self.tmp, self.path)
        return self.path

    def _finish(self, attrs: dict) -> None:
        f = self._file
        f.create_dataset("offsets", data=np.asarray(self.offsets, dtype=np.int64))
        f.create_dataset("names", data=self.names, dtype=h5py.string_dtype("utf-8"))
        for k, v in {**self.attrs, **attrs}.items():
            if k == "skipped":
                v = json.dumps(v)
            f.attrs[k] = "" if v is None else v
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["amplitude_scale"] = INT16_SCALE if self.dtype == np.int16 else 1.0
        f.attrs["sequences"] = len(self.names)
        f.attrs["n_frames"] = self.n_frames
        f.attrs["complete"] = True  # last: a file without it is never trusted
        f.close()

    def abort(self) -> None:
        try:
            if not self._hdf5_failed:  # closing it again would crash the process
                self._file.close()
        finally:
            self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.tmp.exists():  # not finished: an error or an interrupt
            self.abort()


@dataclass(frozen=True)
class Normalisation:
    """What a model was trained on: x = (v - mean) / std of the stored values v (audio: all
    samples; strokes: dx and dy, the pen bit is left as it is). ``amplitude_scale`` is the
    stored value of amplitude 1.0 (32768 for int16 stores, 1 for float32 ones)."""

    observation: str  # "audio" or "strokes"
    mean: float
    std: float
    amplitude_scale: float = 1.0

    def normalise(self, frames: np.ndarray) -> np.ndarray:
        """Frames as a reader returns them (audio: int16 values, or float on the [-1, 1]
        scale; strokes: (pen, dx, dy)) -> normalised float32, exactly as the store would."""
        x = frames.astype(np.float32)
        if self.observation == "strokes":
            x[:, 1:3] = (x[:, 1:3] - self.mean) / self.std
            return x
        read_scale = INT16_SCALE if frames.dtype == np.int16 else 1.0
        if read_scale != self.amplitude_scale:  # to the units the statistics are in
            x *= np.float32(self.amplitude_scale / read_scale)
        return (x - np.float32(self.mean)) / np.float32(self.std)

    def denormalise(self, x):
        """Normalised frames (numpy or torch, (..., D)) -> audio amplitude (1.0 = full scale)
        or (pen, dx, dy) pen offsets."""
        if self.observation == "strokes":
            out = x * 1.0  # a copy of the same type
            out[..., 1:3] = x[..., 1:3] * self.std + self.mean
            return out
        return (x * self.std + self.mean) / self.amplitude_scale

    def as_dict(self) -> dict:
        """Plain Python values (a checkpoint that holds them loads with weights_only=True)."""
        return {
            "observation": str(self.observation),
            "mean": float(self.mean),
            "std": float(self.std),
            "amplitude_scale": float(self.amplitude_scale),
        }


class FrameStore:
    """Read access to one split file, opened lazily in each process.

    Safe to pickle into DataLoader workers and DDP processes: the h5py handle is dropped when
    pickled and reopened (also after a fork) on first access.
    """

    def __init__(self, path: str | Path, rdcc_mbytes: int = 32):
        self.path = Path(path)
        self.rdcc_nbytes = rdcc_mbytes << 20
        with open_finished(self.path) as f:
            if not f.attrs.get("complete", False):
                raise OSError(f"{self.path} is not a finished frame store (no 'complete' mark)")
            self.attrs = _attrs(f)
            self.offsets = f["offsets"][:]
            self.dim = int(f["frames"].shape[1])
            self.dtype = f["frames"].dtype
        self.lengths = np.diff(self.offsets)
        self.observation: str = self.attrs["kind"]  # what x_t is: what_x_is(self.attrs)
        self.mean = float(self.attrs["mean"])
        self.std = float(self.attrs["std"])
        self._file: h5py.File | None = None
        self._dataset: h5py.Dataset | None = None
        self._pid: int | None = None
        self._names: list[str] | None = None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_file"] = state["_dataset"] = state["_pid"] = None
        return state

    def _frames(self) -> h5py.Dataset:
        # the Dataset object is kept: HDF5's chunk cache lives and dies with it
        if self._file is None or self._pid != os.getpid():
            self._file = open_finished(self.path, rdcc_nbytes=self.rdcc_nbytes)
            self._dataset = self._file["frames"]
            self._pid = os.getpid()
        return self._dataset

    def close(self) -> None:
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file = self._dataset = None

    def __len__(self) -> int:
        return len(self.lengths)

    @property
    def names(self) -> list[str]:
        if self._names is None:
            with open_finished(self.path) as f:
                self._names = [n.decode() if isinstance(n, bytes) else n for n in f["names"][:]]
        return self._names

    @property
    def n_frames(self) -> int:
        return int(self.offsets[-1])

    def _check(self, i: int) -> None:
        if not 0 <= i < len(self):
            raise IndexError(f"sequence {i} out of range: {self.path} has {len(self)} sequences")

    def raw(self, i: int, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Frames [start, stop) of sequence i as stored (int16 or float32)."""
        self._check(i)
        n = int(self.lengths[i])
        stop = n if stop is None else min(stop, n)
        base = int(self.offsets[i])
        return self._frames()[base + start : base + stop]

    def span(self, start: int, stop: int) -> np.ndarray:
        """Frames [start, stop) of the split's sequences laid end to end, as stored."""
        if not 0 <= start <= stop <= self.n_frames:
            raise IndexError(
                f"frames [{start}, {stop}) out of range: {self.path} has {self.n_frames}"
            )
        return self._frames()[start:stop]

    def normalise(self, frames: np.ndarray) -> np.ndarray:
        x = frames.astype(np.float32)
        if self.observation == "strokes":
            x[:, 1:3] = (x[:, 1:3] - self.mean) / self.std
            return x
        return (x - np.float32(self.mean)) / np.float32(self.std)

    def window(self, i: int, start: int, length: int) -> np.ndarray:
        """Normalised float32 frames [start, start + length) of sequence i (shorter at its end)."""
        return self.normalise(self.raw(i, start, start + length))

    def sequence(self, i: int) -> np.ndarray:
        """The whole sequence i, normalised float32 (T, D)."""
        return self.normalise(self.raw(i))

    def denormalise(self, x):
        """Back to data units: audio amplitude (1.0 = full scale), or (pen, dx, dy) offsets.
        Accepts a numpy array or a torch tensor of shape (..., D)."""
        return self.normalisation.denormalise(x)

    @property
    def amplitude_scale(self) -> float:
        return float(self.attrs.get("amplitude_scale", 1.0))

    @property
    def normalisation(self) -> Normalisation:
        """The statistics this store normalises with (the train split's, unless replaced)."""
        return Normalisation(self.observation, self.mean, self.std, self.amplitude_scale)

    def use_normalisation(self, norm: Normalisation) -> None:
        """Normalise (and denormalise) with ``norm``, e.g. a trained model's statistics,
        instead of this store's own; ``norm`` may be in other units (an int16-trained model
        reading a float32 store)."""
        unit = norm.amplitude_scale / self.amplitude_scale if self.observation == "audio" else 1.0
        self.mean, self.std = norm.mean / unit, norm.std / unit
