"""Whole-sequence training in length-bucketed batches: little padding, every sequence once."""

from __future__ import annotations

import numpy as np
import pytest
from test_prepare import corpus, data_cfg, write_audio_corpus  # noqa: F401  (fixture)

from vrnn_lightning.data import FramesDataModule
from vrnn_lightning.data.buckets import LengthBucketSampler
from vrnn_lightning.data.resumable import EpochBatches

# lengths like IAM-OnDB lines or Onomatopoeia clips: widely spread
LENGTHS = np.random.default_rng(0).integers(20, 1500, size=3001)


def _padding(batches: list[list[int]]) -> float:
    """Padded steps as a fraction of all steps the batches hold."""
    held = sum(len(b) * LENGTHS[b].max() for b in batches)
    return 1 - sum(LENGTHS[b].sum() for b in batches) / held


def _batches(keys: list, size: int) -> list[list[int]]:
    index = [k[0] for k in keys]
    return [index[i : i + size] for i in range(0, len(index), size)]


def test_every_sequence_once_per_epoch_with_little_padding():
    sampler = LengthBucketSampler(LENGTHS, batch_size=64, seed=3)
    epochs = []
    for epoch in range(2):
        sampler.set_epoch(epoch)
        keys = list(sampler)
        assert sorted(k[0] for k in keys) == list(range(len(LENGTHS)))
        assert all(k[1] == 0 and k[2] == LENGTHS[k[0]] for k in keys)  # whole sequences
        batches = _batches(keys, 64)
        assert _padding(batches) < 0.02
        epochs.append(batches)
    assert epochs[0] != epochs[1]  # new batches and a new order every epoch
    shuffled = _batches([(i,) for i in np.random.default_rng(1).permutation(len(LENGTHS))], 64)
    assert _padding(shuffled) > 0.3  # what unbucketed batches would waste


def test_seeded():
    a, b = (list(LengthBucketSampler(LENGTHS, 64, seed=s)) for s in (5, 5))
    assert a == b and a != list(LengthBucketSampler(LENGTHS, 64, seed=6))


def test_ddp_ranks_share_each_global_batch():
    sampler = LengthBucketSampler(LENGTHS, batch_size=32, world_size=2, seed=3)
    ranks = [EpochBatches(sampler, 32, rank=r, world_size=2) for r in range(2)]
    for r in ranks:
        r.set_epoch(4)
    shards = [[[key[0] for key in batch] for batch in r] for r in ranks]
    assert len(shards[0]) == len(shards[1]) == len(ranks[0])  # DDP: the same number of steps
    plan = sampler.plan(4)[:, 0]
    for j, (a, b) in enumerate(zip(*shards, strict=True)):  # batch j: global batch j, split
        assert sorted(a + b) == sorted(plan[j * 64 : j * 64 + len(a) + len(b)].tolist())
        assert a == plan[j * 64 :: 2][: len(a)].tolist()
    seen = [i for shard in shards for batch in shard for i in batch]
    assert len(seen) == len(set(seen)) == len(LENGTHS) - len(LENGTHS) % 2  # none twice
    full = [b for shard in shards for b in shard[:-1]]
    assert _padding(full) < 0.02


@pytest.mark.parametrize("workers", [0, 2])
def test_the_datamodule_trains_on_whole_sequences(tmp_path, corpus, workers):  # noqa: F811
    write_audio_corpus(tmp_path / "corpus", n_train=10, n_valid=2, n_test=2)
    cfg = data_cfg(tmp_path, batch_size=4, train_full_sequences=True, num_workers=workers)
    dm = FramesDataModule(cfg, seed=1)
    dm.prepare_data()
    dm.setup("fit")
    store = dm.store("train")
    seen = []
    for batch in dm.train_dataloader():
        lengths = store.lengths[batch["index"].numpy()]
        assert batch["x"].shape[1] == lengths.max()
        assert batch["mask"].sum(1).tolist() == lengths.tolist()
        seen += batch["index"].tolist()
    assert sorted(seen) == list(range(len(store)))
