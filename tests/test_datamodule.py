"""FramesDataModule: windows and masks, determinism, workers, full-sequence evaluation, DDP."""

from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch
from test_prepare import corpus, data_cfg, write_audio_corpus  # noqa: F401  (fixture)

from vrnn_lightning.config import ConfigError
from vrnn_lightning.data import TIMIT, FramesDataModule, GWOnline
from vrnn_lightning.data.datamodule import WindowSampler
from vrnn_lightning.data.resumable import EpochBatches


@pytest.fixture
def dm_factory(tmp_path, corpus):  # noqa: F811
    write_audio_corpus(tmp_path / "corpus", n_train=10, n_valid=3, n_test=3)

    def make(**kw):
        kw.setdefault("seed", 7)
        seed = kw.pop("seed")
        dm = FramesDataModule(data_cfg(tmp_path, batch_size=4, eval_batch_size=3, **kw), seed=seed)
        dm.prepare_data()
        dm.setup("fit")
        return dm

    return make


def _batches(loader):
    return [{k: v.clone() for k, v in b.items()} for b in loader]


def test_training_windows_masks_and_coverage(dm_factory):
    dm = dm_factory()
    store = dm.store("train")
    loader = dm.train_dataloader()
    sampler = loader.batch_sampler.sampler
    keys = sampler.plan(0)
    assert len(keys) == len(sampler) == int(np.maximum(1, store.lengths // 8).sum())
    # windows of one sequence do not overlap and stay inside it
    for i in range(len(store)):
        starts = np.sort(keys[keys[:, 0] == i, 1])
        assert starts[0] >= 0 and starts[-1] + min(8, store.lengths[i]) <= store.lengths[i]
        assert (np.diff(starts) >= 8).all()
    sampler.set_epoch(0)
    seen = 0
    for batch in loader:
        x, mask, index = batch["x"], batch["mask"], batch["index"]
        assert x.dtype == torch.float32 and x.shape[1:] == (8, 50) and mask.shape == x.shape[:2]
        assert index.dtype == torch.long
        for b in range(len(x)):
            i, start, length = keys[seen + b]
            assert index[b] == i and mask[b].sum() == length
            np.testing.assert_array_equal(x[b, :length].numpy(), store.window(i, start, length))
            assert (x[b, length:] == 0).all()
        seen += len(x)
    assert seen == len(keys)


def test_short_sequences_are_padded_with_a_mask(dm_factory):
    dm = dm_factory(seq_len=1000)  # every training sequence is shorter than a window
    store = dm.store("train")
    batch = next(iter(dm.train_dataloader()))
    assert batch["x"].shape[1] == 1000
    lengths = store.lengths[batch["index"].numpy()]
    assert batch["mask"].sum(1).tolist() == lengths.tolist()


def test_deterministic_given_the_seed(dm_factory):
    a = _batches(dm_factory().train_dataloader())
    b = _batches(dm_factory().train_dataloader())
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x["x"], y["x"]) and torch.equal(x["index"], y["index"])
    c = _batches(dm_factory(seed=8).train_dataloader())
    assert not all(torch.equal(x["index"], y["index"]) for x, y in zip(a, c, strict=True))
    # each epoch draws new offsets and a new order
    sampler = dm_factory().train_dataloader().batch_sampler.sampler
    assert not np.array_equal(sampler.plan(0), sampler.plan(1))
    assert np.array_equal(sampler.plan(3), sampler.plan(3))


def test_seed_defaults_to_seed_everything(dm_factory):
    L.seed_everything(11)
    a = dm_factory(seed=None).train_dataloader().batch_sampler.sampler.plan(0)
    L.seed_everything(11)
    b = dm_factory(seed=None).train_dataloader().batch_sampler.sampler.plan(0)
    np.testing.assert_array_equal(a, b)


def test_two_workers_give_the_same_batches(dm_factory):
    serial = _batches(dm_factory().train_dataloader())
    loader = dm_factory(num_workers=2).train_dataloader()
    assert loader.persistent_workers
    for x, y in zip(serial, _batches(loader), strict=True):
        assert torch.equal(x["x"], y["x"]) and torch.equal(x["mask"], y["mask"])


def test_ddp_ranks_take_each_global_batch_of_the_epochs_plan(dm_factory):
    sampler = dm_factory().train_dataloader().batch_sampler.sampler
    plan = [tuple(k) for k in sampler.plan(3).tolist()]
    ranks = [EpochBatches(sampler, 4, rank=r, world_size=2) for r in range(2)]
    shards = []
    for r in ranks:
        r.set_epoch(3)
        shards.append(list(r))
    assert len(shards[0]) == len(shards[1])  # DDP: the same number of steps
    for j, (a, b) in enumerate(zip(*shards, strict=True)):  # rank r: keys r, r + 2, ...
        assert a + b == [plan[j * 8 + i] for i in range(0, len(a) * 2, 2)] + [
            plan[j * 8 + i] for i in range(1, len(b) * 2, 2)
        ]
    seen = [k for shard in shards for batch in shard for k in batch]
    assert len(seen) == len(set(seen)) == len(plan) - len(plan) % 2  # a partition, one left out


def test_evaluation_is_shared_over_the_ranks_every_key_once(dm_factory):
    loader = dm_factory().val_dataloader()
    keys = [tuple(k) for k in loader.batch_sampler.sampler.plan(0).tolist()]
    shards = [list(EpochBatches(loader.batch_sampler.sampler, 3, rank=r, world_size=2, even=False))
              for r in range(2)]  # fmt: skip
    seen = [k for shard in shards for batch in shard for k in batch]
    assert sorted(seen) == sorted(keys)


def test_fixed_window_evaluation(dm_factory):
    dm = dm_factory()
    store = dm.store("valid")
    loader = dm.val_dataloader()
    keys = loader.batch_sampler.sampler.plan(0)
    assert (keys[:, 1] == np.concatenate([np.arange(n) * 8 for n in store.lengths // 8])).all()
    a, b = _batches(loader), _batches(dm.val_dataloader())
    assert all(torch.equal(x["x"], y["x"]) for x, y in zip(a, b, strict=True))
    assert all(x["x"].shape[1] == 8 and x["mask"].all() for x in a)


def test_full_sequence_evaluation_masks(dm_factory):
    dm = dm_factory(eval_full_sequences=True)
    store = dm.store("test")
    seen = []
    for batch in dm.test_dataloader():
        lengths = store.lengths[batch["index"].numpy()]
        assert batch["x"].shape[1] == lengths.max()
        assert batch["mask"].sum(1).tolist() == lengths.tolist()
        for b, i in enumerate(batch["index"].tolist()):
            n = store.lengths[i]
            assert batch["mask"][b, :n].all() and not batch["mask"][b, n:].any()
            torch.testing.assert_close(batch["x"][b, :n], dm.sequence("test", i))
        seen += batch["index"].tolist()
    assert sorted(seen) == list(range(len(store)))


def test_model_facing_properties(dm_factory):
    dm = dm_factory()
    assert dm.observation == "audio" and dm.x_dim == 50 and dm.frame_size == 50
    assert dm.sample_rate == 16000
    stats = dm.stats
    assert stats["std"] > 0 and stats["amplitude_scale"] == 32768.0
    x = dm.sequence("train", 0)
    raw = dm.store("train").raw(0)
    torch.testing.assert_close(dm.denormalise(x), torch.from_numpy(raw / 32768.0).float())
    with pytest.raises(KeyError, match="no 'train2' split"):
        dm.sequence("train2", 0)


def test_fit_with_lightning_advances_epochs(dm_factory):
    dm = dm_factory()
    seen = []

    class Probe(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def training_step(self, batch, _):
            seen.append((self.current_epoch, batch["index"].tolist()))
            return (self.w * batch["x"].mean()).sum()

        def validation_step(self, batch, _):
            assert batch["mask"].any()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    trainer = L.Trainer(
        max_epochs=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(Probe(), datamodule=dm)
    first = [i for e, b in seen if e == 0 for i in b]
    second = [i for e, b in seen if e == 1 for i in b]
    assert sorted(first) == sorted(second) and first != second  # same windows, new order


def test_named_datamodules_preset_the_dataset(tmp_path):
    dm = TIMIT(root=str(tmp_path), batch_size=32)
    assert dm.cfg.dataset == "timit" and dm.cfg.batch_size == 32 and dm.cfg.root == str(tmp_path)
    assert GWOnline({"root": "x"}).cfg.dataset == "gw_online"
    with pytest.raises(ConfigError, match="batch_sise"):
        TIMIT(batch_sise=3)


def test_window_sampler_short_and_exact_lengths():
    s = WindowSampler(np.array([3, 8, 17]), 8, shuffle=True, seed=0)
    plan = s.plan(0)
    assert len(plan) == 1 + 1 + 2
    assert plan[plan[:, 0] == 0].tolist() == [[0, 0, 3]]
    assert plan[plan[:, 0] == 1].tolist() == [[1, 0, 8]]
    starts = sorted(plan[plan[:, 0] == 2, 1].tolist())
    assert starts[1] - starts[0] == 8 and 0 <= starts[0] <= 1
