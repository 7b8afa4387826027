"""Runs and evaluations that go wrong lose nothing (issue 11): a failed resume writes nothing
and names the changed key (item 7); vrnn-eval checks --out first and prints before it writes
(item 8); its JSON never holds a bare NaN (item 14)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from conftest import tiny

from vrnn_lightning import evaluate, evaluation
from vrnn_lightning.fit import main as fit_main


def test_resuming_with_a_changed_model_key_is_exit_2_and_writes_nothing(tmp_path, capsys):
    run = tmp_path / "run"
    assert fit_main(tiny(tmp_path, f"out_dir={run}", "trainer.max_steps=2")) == 0
    config = (run / "config.yaml").read_bytes()
    versions = sorted(p.name for p in (run / "csv").iterdir())
    capsys.readouterr()
    code = fit_main(tiny(tmp_path, f"out_dir={run}", "ckpt_path=last", "model.h_dim=24"))
    err = capsys.readouterr().err
    assert code == 2
    assert "model.h_dim: 24 here, but the run being resumed" in err
    assert (run / "config.yaml").read_bytes() == config
    assert sorted(p.name for p in (run / "csv").iterdir()) == versions


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("trained")
    assert fit_main(tiny(tmp, f"out_dir={tmp / 'run'}", "trainer.max_steps=2")) == 0
    return tmp / "run" / "checkpoints" / "last.ckpt"


def _no_evaluation(*args, **kwargs):
    raise AssertionError("evaluated before --out was checked")


@pytest.mark.parametrize("where", ["under-a-file", "a-folder"])
def test_an_unusable_out_path_is_exit_2_before_evaluating(
    trained, tmp_path, monkeypatch, capsys, where
):
    (tmp_path / "file.txt").write_text("x")
    out = tmp_path / "file.txt" / "eval.json" if where == "under-a-file" else tmp_path
    monkeypatch.setattr("vrnn_lightning.evaluation.evaluate", _no_evaluation)
    assert evaluate.main(["--ckpt", str(trained), "--out", str(out), "eval.iw_samples=2"]) == 2
    err = capsys.readouterr().err
    assert f"--out: {out}" in err or f"--out: cannot write {out}" in err


def test_results_are_printed_before_a_failed_write(trained, tmp_path, monkeypatch, capsys):
    out = tmp_path / "eval.json"
    write_text = Path.write_text

    def full_disk(self, *args, **kwargs):
        if self == out:
            raise OSError(28, "No space left on device")
        return write_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full_disk)
    assert evaluate.main(["--ckpt", str(trained), "--out", str(out), "eval.iw_samples=2"]) == 2
    captured = capsys.readouterr()
    assert "synthetic_speech (test): log-likelihood" in captured.out  # the evaluation is shown
    assert "No space left on device" in captured.err


def test_eval_json_is_valid_and_counts_non_finite_sequences(trained, tmp_path, monkeypatch):
    real = evaluation.estimate_all

    def one_nan_per_batch(scoring):
        estimates = real(scoring)
        estimates["iwae"].per_sequence[0] = float("nan")
        return estimates

    monkeypatch.setattr(evaluation, "estimate_all", one_nan_per_batch)
    out = tmp_path / "eval.json"
    args = ["--ckpt", str(trained), "--out", str(out), "eval.iw_samples=2", "eval.batch_size=4"]
    assert evaluate.main(args) == 0

    def bare(constant):
        raise AssertionError(f"bare {constant} in the JSON")

    result = json.loads(out.read_text(), parse_constant=bare)
    batches = math.ceil(result["n_sequences"] / 4)
    assert result["iwae"]["nonfinite_sequences"] == batches
    assert result["elbo"]["nonfinite_sequences"] == 0
    assert math.isfinite(result["iwae"]["per_sequence"])
