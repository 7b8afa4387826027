"""Non-finite values are said, counted and never written as bare NaN (issue 11, item 14)."""

from __future__ import annotations

import logging
import math

import lightning as L
import torch
from conftest import tiny_config
from torch.utils.data import DataLoader

from vrnn_lightning.module import VRNNModule


def module(*overrides: str) -> VRNNModule:
    cfg = tiny_config("model.variant=vrnn_gauss", *overrides)
    return VRNNModule(cfg.model, cfg.optim, observation="audio", x_dim=5, batch_size=2, seq_len=6)


def batches(n: int) -> list[dict]:
    return [
        {"x": torch.randn(2, 6, 5), "mask": torch.ones(2, 6, dtype=torch.bool)} for _ in range(n)
    ]


def trainer(**kw) -> L.Trainer:
    return L.Trainer(
        accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, **kw,
    )  # fmt: skip


def test_a_skipped_training_step_is_said_not_only_logged(caplog):
    mod = module("optim.max_nonfinite_steps=3")
    data = batches(4)
    data[2]["x"][1, 0, 0] = float("nan")
    with caplog.at_level(logging.INFO):
        trainer(max_epochs=1).fit(mod, DataLoader(data, batch_size=None))
    assert "step 2: non-finite loss, step skipped (1 in a row, 1 in all" in caplog.text
    assert "optim.max_nonfinite_steps" in caplog.text


def test_validation_leaves_out_and_counts_non_finite_sequences(caplog):
    mod = module()
    data = batches(3)
    data[1]["x"][0, 3, 2] = float("inf")  # one sequence of six
    logged = {}
    mod.log = lambda name, value, **kw: logged.__setitem__(name, float(value))
    mod.on_validation_epoch_start()
    for batch in data:
        with torch.no_grad():
            mod.validation_step(batch, 0)
    with caplog.at_level(logging.INFO):
        mod.on_validation_epoch_end()
    assert logged["val/nonfinite_sequences"] == 1
    assert math.isfinite(logged["val/elbo"]) and math.isfinite(logged["val/elbo_per_frame"])
    assert "1 sequence(s) with a non-finite ELBO were left out of val/elbo" in caplog.text
