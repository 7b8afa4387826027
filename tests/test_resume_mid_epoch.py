"""A run resumed from a checkpoint written in mid-epoch carries on at the batch it stopped at,
in the same epoch's plan, for every way of drawing training batches (data/resumable.py)."""

from __future__ import annotations

import warnings

import lightning as L
import numpy as np
import pytest
import torch
from conftest import tiny, tiny_config
from test_fit import run_cli
from torch.utils.data import Dataset

from vrnn_lightning.data.buckets import LengthBucketSampler
from vrnn_lightning.data.datamodule import WindowSampler
from vrnn_lightning.data.resumable import EpochBatches, ResumableLoader
from vrnn_lightning.data.streams import StreamSampler
from vrnn_lightning.training import train


class Keys(Dataset):
    def __getitem__(self, key):
        return torch.tensor(key)

    def __len__(self):
        return 0


def _passes(batches: EpochBatches, state: dict) -> list:
    """The index batches of one pass of a ResumableLoader over ``batches``, its state loaded."""
    loader = ResumableLoader(Keys(), batch_sampler=batches)
    loader.load_state_dict(state)
    return [b.tolist() for b in loader]


SAMPLERS = {
    "windows": lambda world: WindowSampler(np.arange(20, 120, 7), 8, shuffle=True, seed=3),
    "buckets": lambda world: LengthBucketSampler(np.arange(3, 40), 4, world_size=world, seed=3),
    "streams": lambda world: StreamSampler(2000, seq_len=8, batch_size=4, world_size=world),
}


@pytest.mark.parametrize("kind", SAMPLERS)
@pytest.mark.parametrize("world", [1, 2])
def test_a_resumed_pass_is_the_rest_of_that_epochs_batches_on_every_rank(kind, world):
    for rank in range(world):

        def batches(rank=rank):
            return EpochBatches(SAMPLERS[kind](world), 4, rank=rank, world_size=world)

        full = _passes(batches(), {"epoch": 2, "batch": 0})
        resumed = _passes(batches(), {"epoch": 2, "batch": 3})
        assert resumed == full[3:]
        assert full != _passes(batches(), {"epoch": 1, "batch": 0}) or kind == "streams"
        if kind != "streams":
            assert len(full[-1]) < 4, "a short last batch stays short"


def test_the_place_is_what_training_took_and_the_skip_is_for_the_next_pass_only():
    sampler = WindowSampler(np.arange(20, 120, 7), 8, shuffle=True, seed=3)
    batches = EpochBatches(sampler, 4)
    loader = ResumableLoader(Keys(), batch_sampler=batches, num_workers=1, persistent_workers=True)
    batches.set_epoch(1)
    full = []
    for batch in loader:  # the worker draws ahead; only what training took counts
        full.append(batch.tolist())
        if len(full) == 2:
            batches.batch_taken()
            batches.batch_taken()
            assert loader.state_dict() == {"epoch": 1, "batch": 2}
    loader.load_state_dict({"epoch": 1, "batch": 2})
    assert [b.tolist() for b in loader] == full[2:]
    batches.set_epoch(1)
    assert [b.tolist() for b in loader] == full
    for _ in range(len(full)):
        batches.batch_taken()
    assert loader.state_dict() == {"epoch": 2, "batch": 0}  # the epoch is done


class Batches(L.Callback):
    """What every training step of a run trains on, by (epoch, batch index)."""

    def __init__(self):
        self.seen = {}

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        x = batch["x"].numpy().tobytes()
        self.seen[trainer.current_epoch, batch_idx] = (batch["index"].tolist(), hash(x))


def _run(tmp_path, out, *overrides) -> tuple[dict, list[str]]:
    batches = Batches()
    cfg = tiny_config(
        f"data.cache_dir={tmp_path / 'cache'}",
        f"out_dir={tmp_path / out}",
        "trainer.max_epochs=10",
        "trainer.limit_val_batches=1",
        "trainer.early_stopping_patience=null",
        *overrides,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(cfg, extra_callbacks=[batches])
    return batches.seen, [str(w.message) for w in caught]


# batches per epoch of the tiny run: 23 windows of 8 frames; 5 batches of whole sequences
WAYS = {"windows": ([], 23), "buckets": (["data.train_full_sequences=true"], 5)}


@pytest.mark.parametrize("way", WAYS)
def test_a_run_stopped_in_mid_epoch_and_resumed_sees_the_batches_of_an_uninterrupted_one(
    tmp_path, way
):
    extra, per_epoch = WAYS[way]
    steps = f"trainer.max_steps={2 * per_epoch}"
    straight, _ = _run(tmp_path, "straight", steps, *extra)
    assert len(straight) == 2 * per_epoch
    # stopped by max_steps in mid-epoch: last.ckpt is written there (at the train-epoch end)
    stop = per_epoch // 2 + 1
    first, _ = _run(tmp_path, "stopped", f"trainer.max_steps={stop}", *extra)
    rest, warned = _run(tmp_path, "stopped", steps, "ckpt_path=last", *extra)
    assert not [w for w in warned if "not resumable" in w]
    assert min(rest) == (0, stop), "the resumed run carries on in the same epoch"
    assert first | rest == straight


def test_a_resume_after_a_mid_epoch_validation_with_a_worker_process(tmp_path):
    # stopped at step 33, after the validation at batch 10 of epoch 1: last.ckpt is that
    # validation's
    run = ["trainer.val_check_interval=10", "data.num_workers=1"]
    straight, _ = _run(tmp_path, "straight", "trainer.max_steps=46", *run)
    first, _ = _run(tmp_path, "stopped", "trainer.max_steps=33", *run)
    rest, warned = _run(tmp_path, "stopped", "trainer.max_steps=46", "ckpt_path=last", *run)
    assert not [w for w in warned if "not resumable" in w]
    assert min(rest) == (1, 10)
    assert {**first, **rest} == straight


def test_a_resume_from_an_end_of_epoch_checkpoint_starts_the_next_epoch(tmp_path):
    straight, _ = _run(tmp_path, "straight", "trainer.max_steps=30")
    first, _ = _run(tmp_path, "stopped", "trainer.max_steps=23")
    rest, _ = _run(tmp_path, "stopped", "trainer.max_steps=30", "ckpt_path=last")
    assert min(rest) == (1, 0) and len(rest) == 7
    assert first | rest == straight


@pytest.mark.slow
def test_ddp_ranks_resumed_in_mid_epoch_train_to_the_same_weights(tmp_path):
    # each of 2 ranks: 12 batches an epoch, the last short; stopped at 7, resumed to 18
    ddp = ["trainer.devices=2", "trainer.strategy=ddp", "trainer.limit_val_batches=1"]

    def fit(out, *args):
        result = run_cli(tiny(tmp_path, f"out_dir={tmp_path / out}", *ddp, *args))
        assert result.returncode == 0, result.stderr[-3000:]
        assert "not resumable" not in result.stderr

    fit("straight", "trainer.max_steps=18")
    fit("stopped", "trainer.max_steps=7")
    fit("stopped", "trainer.max_steps=18", "ckpt_path=last")
    ckpts = {
        out: torch.load(tmp_path / out / "checkpoints" / "last.ckpt", weights_only=False)
        for out in ("straight", "stopped")
    }
    assert ckpts["stopped"]["global_step"] == ckpts["straight"]["global_step"] == 18
    for name, value in ckpts["straight"]["state_dict"].items():
        torch.testing.assert_close(ckpts["stopped"]["state_dict"][name], value, msg=name)


@pytest.mark.parametrize("resume", ["trainer.max_steps=100", "trainer.max_steps=-1"])
def test_a_run_stopped_by_max_steps_in_mid_epoch_and_resumed_trains_every_epoch_in_full(
    tmp_path, resume
):
    # last.ckpt of the stop is written in the epoch's end hooks: Lightning resumed it one epoch
    # short (max_steps set: ended at step 23) or without the rest of the epoch (unset: 36)
    epochs = "trainer.max_epochs=2"
    straight, _ = _run(tmp_path, "straight", epochs)
    first, _ = _run(tmp_path, "stopped", epochs, "trainer.max_steps=13")
    rest, _ = _run(tmp_path, "stopped", epochs, resume, "ckpt_path=last")
    assert len(straight) == 46
    assert first | rest == straight
