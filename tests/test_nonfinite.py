"""Non-finite values are said, counted and never written as bare NaN (issue 11, item 14)."""

from __future__ import annotations

import logging
import math

import torch
from test_module import batches, module, trainer  # the bare module of conf/debug.yaml
from torch.utils.data import DataLoader


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
