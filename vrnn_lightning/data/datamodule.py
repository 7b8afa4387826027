"""FramesDataModule: batches of normalised frames from the HDF5 frame stores.

A batch is ``{"x": float32 (B, T, D), "mask": bool (B, T), "index": long (B,)}`` where
``index`` is the sequence index in the split.

Training draws one of three ways. By default, fixed windows of ``data.seq_len`` frames:
each sequence of L frames gives max(1, L // seq_len) consecutive windows from a random offset,
so an epoch covers the training frames about once and a different tail is left out each
epoch; sequences shorter than seq_len give one window padded with a mask.
``data.train_full_sequences``: whole sequences in length-bucketed batches (data/buckets.py).
``data.streams``: consecutive windows of parallel streams, for truncated BPTT with carried
state (data/streams.py). Evaluation uses the same windows from offset 0, or whole sequences
(padded to the longest in the batch) when ``data.eval_full_sequences`` is true.

Randomness comes from a torch Generator seeded with (seed, epoch) in the sampler, which runs in
the main process: every rank draws the same plan of the epoch and takes its own share of
every global batch itself (data/resumable.py; vrnn-fit turns Lightning's own sharding off,
which re-shuffled these plans). The training loader saves its place in that plan in the
checkpoint: a run resumed in mid-epoch carries on at the batch it stopped at, whichever of
the three ways, on every rank.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator, Mapping

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from vrnn_lightning.config import DataConfig
from vrnn_lightning.data.buckets import LengthBucketSampler
from vrnn_lightning.data.corpora import get_corpus
from vrnn_lightning.data.norm_stats import load_norm_stats
from vrnn_lightning.data.pipeline import locate, prepare
from vrnn_lightning.data.resumable import EpochBatches, ResumableLoader
from vrnn_lightning.data.source import CorpusError
from vrnn_lightning.data.store import (
    SPLITS,
    FrameStore,
    Normalisation,
    as_data_config,
    is_finished,
    what_x_is,
)
from vrnn_lightning.data.streams import StreamDataset, StreamSampler

Key = tuple[int, int, int]  # (sequence index, first frame, number of frames)


class WindowSampler(Sampler[Key]):
    """Yields (i, start, length) windows; shuffled with a fresh random offset per epoch."""

    def __init__(self, lengths: np.ndarray, seq_len: int, *, shuffle: bool, seed: int = 0):
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.seq_len = seq_len
        self.shuffle = shuffle
        self.seed = int(seed)
        self.epoch = 0
        self.per_seq = np.maximum(1, self.lengths // seq_len)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return int(self.per_seq.sum())

    def plan(self, epoch: int) -> np.ndarray:
        """(n_windows, 3) keys for one epoch, in shuffled order when training."""
        seq = np.repeat(np.arange(len(self.lengths)), self.per_seq)
        k = np.arange(len(seq)) - np.repeat(np.cumsum(self.per_seq) - self.per_seq, self.per_seq)
        slack = np.maximum(0, self.lengths - self.per_seq * self.seq_len)
        offset = np.zeros(len(self.lengths), dtype=np.int64)
        order = np.arange(len(seq))
        if self.shuffle:
            g = torch.Generator().manual_seed((self.seed * 1_000_003 + epoch) % 2**63)
            u = torch.rand(len(self.lengths), generator=g, dtype=torch.float64).numpy()
            offset = np.floor(u * (slack + 1)).astype(np.int64)
            order = torch.randperm(len(seq), generator=g).numpy()
        start = offset[seq] + k * self.seq_len
        length = np.minimum(self.seq_len, self.lengths[seq])
        return np.stack([seq, start, length], axis=1)[order]

    def __iter__(self) -> Iterator[Key]:
        keys = self.plan(self.epoch)
        self.epoch += 1  # a plain PyTorch loop without set_epoch still varies per epoch
        return (tuple(int(v) for v in key) for key in keys)


class SequenceSampler(Sampler[Key]):
    """Whole sequences, longest first (less padding per batch; order does not change a mean)."""

    def __init__(self, lengths: np.ndarray):
        self.lengths = np.asarray(lengths, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.lengths)

    def plan(self, epoch: int = 0) -> np.ndarray:
        order = np.argsort(-self.lengths, kind="stable")
        return np.stack([order, np.zeros_like(order), self.lengths[order]], axis=1)

    def __iter__(self) -> Iterator[Key]:
        return (tuple(int(v) for v in key) for key in self.plan())


class FramesDataset(Dataset):
    """Map-style dataset over one split, indexed by (i, start, length) keys from a sampler."""

    def __init__(self, store: FrameStore):
        self.store = store

    def __len__(self) -> int:
        return len(self.store)

    def __getitem__(self, key: Key | int) -> dict:
        if isinstance(key, (int, np.integer)):
            key = (int(key), 0, int(self.store.lengths[key]))
        i, start, length = key
        return {"x": torch.from_numpy(self.store.window(i, start, length)), "index": i}


class PadCollate:
    """Stacks items, zero-padding to ``length`` (or to the longest item) with a mask."""

    def __init__(self, length: int | None = None):
        self.length = length

    def __call__(self, items: list[dict]) -> dict:
        lengths = [len(it["x"]) for it in items]
        t = self.length or max(lengths)
        x = torch.zeros(len(items), t, items[0]["x"].shape[1], dtype=torch.float32)
        mask = torch.zeros(len(items), t, dtype=torch.bool)
        for b, (it, n) in enumerate(zip(items, lengths, strict=True)):
            x[b, :n] = it["x"]
            mask[b, :n] = True
        index = torch.tensor([it["index"] for it in items], dtype=torch.long)
        return {"x": x, "mask": mask, "index": index}


def ignore_sigterm(worker_id: int) -> None:
    """DataLoader workers leave SIGTERM and SIGUSR1 (SLURM's warning) to the main process,
    which stops the run between two batches, saves it and shuts them down (vrnn_lightning/
    preemption.py). A scheduler signals every process of a job: a worker killed by it made
    the run fail ("DataLoader worker ... is killed by signal: Terminated"), exit 1, nothing
    saved. Workers exit anyway when the main process is gone (torch watches it from each
    worker)."""
    for signum in (signal.SIGTERM, signal.SIGUSR1):
        signal.signal(signum, signal.SIG_IGN)


class FramesDataModule(L.LightningDataModule):
    """The data of one corpus, from its ``DataConfig`` (dataclass, DictConfig or mapping).

    ``FramesDataModule(cfg.data, seed=cfg.seed)``; keyword overrides are data keys
    (``batch_size=32``). ``seed`` defaults to torch.initial_seed() at setup, i.e. the seed
    given to Lightning's seed_everything.
    """

    DATASET: str | None = None  # preset by the named subclasses (TIMIT, ...)
    DEFAULTS: dict = {}  # data keys a named subclass presets (a keyword still overrides them)

    def __init__(
        self,
        data: DataConfig | Mapping | None = None,
        *,
        seed: int | None = None,
        **overrides,
    ):
        super().__init__()
        if self.DATASET is not None:
            overrides["dataset"] = self.DATASET
        if self.DEFAULTS:
            given = dict(data or {}) if isinstance(data, Mapping) else {}
            overrides = {**{k: v for k, v in self.DEFAULTS.items() if k not in given}, **overrides}
        self.cfg: DataConfig = as_data_config(data, **overrides)
        self.seed = seed
        self.stores: dict[str, FrameStore] = {}
        self.folder = None
        self.prepared = False  # prepare_data ran in this process
        self.train_batches: EpochBatches | None = None  # the training loader's, once made

    # ---------------------------------------------------------------- preparation

    def prepare_data(self) -> None:
        if not self.prepared:  # vrnn-fit prepares before Lightning asks (training.py)
            prepare(self.cfg)
            self.prepared = True

    def setup(self, stage: str | None = None) -> None:
        if not self.stores:
            self._open_stores()
        if stage == "fit":
            self.check_validation(self.trainer.limit_val_batches if self.trainer else None)

    def check_validation(self, limit_val_batches=None) -> None:
        """CorpusError when training would run without validation it was not told to skip
        (``limit_val_batches`` 0): no val/elbo, no best checkpoint, no early stopping, and
        not a word about it. vrnn-fit asks before it writes anything."""
        if limit_val_batches == 0:
            return  # asked for: trainer.limit_val_batches=0
        if not self.stores:
            self._open_stores()
        valid = self.stores.get("valid")
        if valid is not None and len(valid) > 0:
            return
        skipped = len(valid.attrs["skipped"]) if valid is not None else 0
        why = f"every one of its {skipped} files was skipped" if skipped else "it has no files"
        raise CorpusError(
            f"{self.cfg.dataset}: the valid split has no usable sequence ({why}; see "
            f"{self.folder / 'report.txt'}); training needs it for val/elbo, the best "
            "checkpoint and early stopping. Fix or replace those files, change the split "
            "(data.valid_fraction, data.split_seed), or train without validation with "
            "trainer.limit_val_batches=0"
        )

    def _open_stores(self) -> None:
        _, sources, fp, folder = locate(self.cfg)
        paths = {s: folder / f"{s}.h5" for s in SPLITS if s in sources}
        if not all(is_finished(p, fp) for p in paths.values()):
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                raise RuntimeError(
                    f"the frame store {folder} is not prepared: call prepare_data() on rank 0 "
                    "(Lightning does) or run vrnn-prepare first"
                )
            prepare(self.cfg)
        self.folder = folder
        stores = {s: FrameStore(p) for s, p in paths.items()}
        if self.cfg.norm_stats:
            given = load_norm_stats(self.cfg.norm_stats, stores["train"].amplitude_scale)
            for store in stores.values():  # applied when reading: every split, every worker
                store.mean, store.std = given["mean"], given["std"]
        self.stores = stores
        if self.seed is None:
            self.seed = torch.initial_seed() % 2**63

    def store(self, split: str) -> FrameStore:
        self.setup()
        if split not in self.stores:
            raise KeyError(
                f"{self.cfg.dataset} has no '{split}' split; it has {', '.join(self.stores)}"
            )
        return self.stores[split]

    # ---------------------------------------------------------------- loaders

    def _loader(self, split: str, sampler, batch_size: int, pad_to: int | None, dataset=None):
        """A loader of this rank's share of ``sampler``'s plan (data/resumable.py); training's
        resumes in mid-epoch where it stopped, evaluation's always runs whole."""
        trainer, workers = self.trainer, self.cfg.num_workers
        training = split == "train"
        batches = EpochBatches(
            sampler,
            batch_size,
            rank=trainer.global_rank if trainer is not None else 0,
            world_size=trainer.world_size if trainer is not None else 1,
            even=training,  # DDP: every rank the same number of training steps
            epoch_of=self._fit_epoch,
            epoch_length=self._epoch_length,
        )
        if training:
            self.train_batches = batches  # told of every batch training takes
        return (ResumableLoader if training else DataLoader)(
            dataset or FramesDataset(self.store(split)),
            batch_sampler=batches,
            collate_fn=PadCollate(pad_to),
            num_workers=workers,
            persistent_workers=workers > 0,
            worker_init_fn=ignore_sigterm if workers > 0 else None,
            pin_memory=torch.cuda.is_available(),
        )

    def _fit_epoch(self) -> int | None:
        """The epoch a fitting trainer is in (None: no trainer fits)."""
        trainer = self.trainer
        fitting = trainer is not None and trainer.state.fn == "fit"
        return trainer.current_epoch if fitting else None

    def _epoch_length(self) -> int | None:
        """The training batches an epoch of the trainer takes (trainer.limit_train_batches)."""
        n = self.trainer.num_training_batches if self.trainer is not None else float("inf")
        return int(n) if 0 < n < float("inf") else None

    def on_before_batch_transfer(self, batch, dataloader_idx: int):
        # Lightning's hook as a batch's turn comes (never for one its loader drew ahead): the
        # training loader's place in the epoch, for the checkpoint
        trainer = self.trainer
        if trainer is not None and trainer.training and self.train_batches is not None:
            self.train_batches.batch_taken()
        return batch

    def train_dataloader(self) -> DataLoader:
        store = self.store("train")
        world = self.trainer.world_size if self.trainer is not None else 1
        if self.cfg.streams:
            sampler = StreamSampler(store.n_frames, self.cfg.seq_len, self.cfg.batch_size, world)
            dataset = StreamDataset(store)
            return self._loader("train", sampler, self.cfg.batch_size, None, dataset)
        if self.cfg.train_full_sequences:
            sampler = LengthBucketSampler(
                store.lengths, self.cfg.batch_size, world_size=world, seed=self.seed
            )
            return self._loader("train", sampler, self.cfg.batch_size, None)
        sampler = WindowSampler(store.lengths, self.cfg.seq_len, shuffle=True, seed=self.seed)
        return self._loader("train", sampler, self.cfg.batch_size, self.cfg.seq_len)

    def eval_dataloader(self, split: str) -> DataLoader:
        store = self.store(split)
        if self.cfg.eval_full_sequences:
            return self._loader(
                split, SequenceSampler(store.lengths), self.cfg.eval_batch_size, None
            )
        sampler = WindowSampler(store.lengths, self.cfg.seq_len, shuffle=False)
        return self._loader(split, sampler, self.cfg.eval_batch_size, self.cfg.seq_len)

    def val_dataloader(self) -> DataLoader:
        return self.eval_dataloader("valid")

    def test_dataloader(self) -> DataLoader:
        return self.eval_dataloader("test")

    def teardown(self, stage: str | None = None) -> None:
        for store in self.stores.values():
            store.close()

    # ---------------------------------------------------------------- what the model needs

    @property
    def observation(self) -> str:
        """What x_t is: "audio" (a frame of samples) or "strokes" (a pen step)."""
        return self._what_x_is()[0]

    @property
    def x_dim(self) -> int:
        return self._what_x_is()[1]

    def _what_x_is(self) -> tuple[str, int]:
        # the train store's header once prepared; before that the header it will have,
        # from the corpus and the config (no preparation needed to build a model)
        if self.stores:
            return what_x_is(self.stores["train"].attrs)
        corpus = get_corpus(self.cfg.dataset)
        return what_x_is({"kind": corpus.OBSERVATION, "frame_size": self.cfg.frame_size})

    @property
    def frame_size(self) -> int:
        return self.cfg.frame_size if self.observation == "audio" else 1

    @property
    def sample_rate(self) -> int | None:
        return self.cfg.sample_rate if self.observation == "audio" else None

    @property
    def stats(self) -> dict:
        """The normalisation in use, the train split's or data.norm_stats':
        {"mean", "std", "amplitude_scale"}."""
        s = self.store("train")
        return {"mean": s.mean, "std": s.std, "amplitude_scale": s.amplitude_scale}

    def use_normalisation(self, norm: Normalisation) -> None:
        """Normalise every split with ``norm`` (a trained model's statistics) instead of the
        train split's: a model is always fed data as it was trained."""
        for store in self.stores.values():
            store.use_normalisation(norm)

    def denormalise(self, x):
        """Normalised frames (numpy or torch, (..., D)) -> audio amplitude (1.0 = full
        scale) or (pen, dx, dy) pen offsets."""
        return self.store("train").denormalise(x)

    def sequence(self, split: str, i: int) -> torch.Tensor:
        """One whole sequence of a split, normalised, float32 (T, D)."""
        return torch.from_numpy(self.store(split).sequence(i))
