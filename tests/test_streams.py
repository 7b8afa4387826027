"""Truncated BPTT with carried state: the stream layout, the carry, the reset, DDP and resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import tiny, tiny_config
from test_fit import run_cli
from test_prepare import corpus, data_cfg, write_audio_corpus  # noqa: F401  (fixture)

from vrnn_lightning.config import ConfigError, load_config
from vrnn_lightning.data import FramesDataModule
from vrnn_lightning.data.resumable import EpochBatches
from vrnn_lightning.data.streams import StreamSampler
from vrnn_lightning.fit import main as fit_main
from vrnn_lightning.module import VRNNModule

SEQ, BATCH = 8, 2


@pytest.fixture
def streams_dm(tmp_path, corpus):  # noqa: F811
    write_audio_corpus(tmp_path / "corpus", n_train=6, n_valid=2, n_test=2)
    dm = FramesDataModule(data_cfg(tmp_path, batch_size=BATCH, streams=True), seed=1)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def test_batches_are_consecutive_windows_of_contiguous_streams(streams_dm):
    store = streams_dm.store("train")
    loader = streams_dm.train_dataloader()
    sampler = loader.batch_sampler.sampler
    stream_len = store.n_frames // (BATCH * SEQ) * SEQ
    assert sampler.stream_len == stream_len and len(loader) == stream_len // SEQ
    batches = list(loader)
    for b in range(BATCH):  # row b of consecutive batches is stream b, in order
        joined = torch.cat([batch["x"][b] for batch in batches])
        expected = store.normalise(store.span(b * stream_len, (b + 1) * stream_len))
        np.testing.assert_array_equal(joined.numpy(), expected)
    assert all(batch["mask"].all() and batch["x"].shape[:2] == (BATCH, SEQ) for batch in batches)
    # every epoch the same streams, in the same order
    again = list(streams_dm.train_dataloader())
    assert all(torch.equal(a["x"], b["x"]) for a, b in zip(batches, again, strict=True))


def test_ddp_ranks_get_their_own_streams():
    sampler = StreamSampler(n_frames=1000, seq_len=5, batch_size=3, world_size=2)
    stream_len = 1000 // 30 * 5
    for rank in range(2):
        shard = list(EpochBatches(sampler, 3, rank=rank, world_size=2))
        assert len(shard) == sampler.windows
        for j, batch in enumerate(shard):  # batch j of this rank: window j of its 3 streams
            assert batch == [((rank * 3 + b) * stream_len + j * 5, 5) for b in range(3)]


def _record_noise(module):
    """Draws each training forward's noise from a fixed generator and keeps it."""
    drawn, forward, g = [], module.model.forward, torch.Generator().manual_seed(0)

    def wrapped(x, mask=None, **kw):
        if kw.get("noise") is None:
            shape = (*x.shape[:2], module.model.z_dim)
            kw["noise"] = torch.randn(shape, generator=g)
            drawn.append(kw["noise"])
        return forward(x, mask, **kw)

    module.model.forward = wrapped
    return drawn


def _module(reset_every: int) -> VRNNModule:
    """A tiny module with torch's initialisation (the state matters more than under the
    paper's small uniform weights)."""
    cfg = tiny_config(
        "model.variant=vrnn_gmm",
        "data.frame_size=50",
        f"data.seq_len={SEQ}",
        f"data.batch_size={BATCH}",
        "data.streams=true",
        f"optim.tbptt_reset_every={reset_every}",
        "model.init=torch",
    )
    return VRNNModule(
        cfg.model,
        cfg.optim,
        observation="audio",
        x_dim=50,
        batch_size=cfg.data.batch_size,
        seq_len=cfg.data.seq_len,
    )


def test_carried_loss_over_k_windows_equals_one_pass_over_their_concatenation(streams_dm):
    k = 3
    module = _module(reset_every=k)
    drawn = _record_noise(module)
    batches = list(streams_dm.train_dataloader())[: k + 1]
    with torch.no_grad():
        losses = [module.training_step(b, i) for i, b in enumerate(batches)]
        model = module.model
        x = torch.cat([b["x"] for b in batches[:k]], dim=1)  # k consecutive windows per stream
        one_pass = module.loss(model(x, noise=torch.cat(drawn[:k], 1)), torch.ones(x.shape[:2]))
        torch.testing.assert_close(sum(losses[:k]), one_pass, rtol=2e-6, atol=0)
        # batch k starts afresh: from zero, not from the state of batch k - 1
        fresh = module.loss(model(batches[k]["x"], noise=drawn[k]), batches[k]["mask"])
        torch.testing.assert_close(losses[k], fresh, rtol=2e-6, atol=0)
        # without the carry the windows score differently (the test can tell)
        plain = _module(reset_every=0)
        plain.load_state_dict(module.state_dict())
        _record_noise(plain)
        unstreamed = sum(plain.training_step(b, i) for i, b in enumerate(batches[:k]))
        assert abs(unstreamed - one_pass) > 2e-5 * abs(one_pass), (unstreamed, one_pass)


def test_the_state_resets_every_n_batches_and_after_a_skipped_step():
    module = _module(reset_every=4)
    carried = module.carried
    starts = []
    for i in range(9):
        starts.append(carried.initial(i, BATCH, "cpu") is not None)
        carried.keep((torch.ones(BATCH, 16), torch.ones(BATCH, 16)), i)
    assert starts == [False, True, True, True, False, True, True, True, False]
    carried.forget()  # a non-finite step: the next batch starts from zero
    assert carried.initial(9, BATCH, "cpu") is None


def test_carrying_state_needs_streams():
    with pytest.raises(ConfigError, match="optim.tbptt_reset_every"):
        load_config(overrides=["optim.tbptt_reset_every=4"])


def _weights(out):
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    return ckpt["state_dict"], ckpt["global_step"]


@pytest.mark.slow
def test_a_run_resumed_in_mid_epoch_carries_on_with_the_same_streams_and_states(tmp_path):
    # 22 batches an epoch; a validation (and last.ckpt) every 4: the kill lands after batch 4,
    # in the middle of a group of 3 carried batches, and the run crosses an epoch boundary
    run = [
        "data.streams=true",
        "optim.tbptt_reset_every=3",
        "trainer.val_check_interval=4",
        "trainer.limit_val_batches=1",
        "trainer.early_stopping_patience=null",
    ]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert fit_main(tiny(tmp_path, f"out_dir={straight}", "trainer.max_steps=28", *run)) == 0
    assert fit_main(tiny(tmp_path, f"out_dir={killed}", "trainer.max_steps=4", *run)) == 0
    ckpt = torch.load(killed / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 4 and bool(ckpt["carried_state"]["valid"][0])
    assert int(ckpt["carried_state"]["next_batch"][0]) == 4
    resume = [f"out_dir={killed}", "ckpt_path=last", "trainer.max_steps=28", *run]
    assert fit_main(tiny(tmp_path, *resume)) == 0
    ref, ref_step = _weights(straight)
    got, step = _weights(killed)
    assert step == ref_step == 28  # last.ckpt: the run's last step
    for name, value in ref.items():
        torch.testing.assert_close(got[name], value, rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.slow
def test_ddp_on_cpu_carries_and_checkpoints_every_ranks_state(tmp_path):
    out = tmp_path / "ddp"
    args = [
        f"out_dir={out}",
        "trainer.devices=2",
        "trainer.strategy=ddp",
        "trainer.max_steps=6",
        "trainer.val_check_interval=5",
        "trainer.limit_val_batches=1",
        "data.streams=true",
        "data.batch_size=4",
        "optim.tbptt_reset_every=4",
    ]
    result = run_cli(tiny(tmp_path, *args))
    assert result.returncode == 0, result.stderr[-3000:]
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    saved = ckpt["carried_state"]
    assert saved["h"].shape == (2, 4, 16) and saved["valid"].tolist() == [True, True]
    assert saved["next_batch"].tolist() == [6, 6]  # saved at the run's last step
    assert not torch.equal(saved["h"][0], saved["h"][1])  # each rank its own streams
