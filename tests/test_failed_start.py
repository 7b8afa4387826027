"""A command that cannot start leaves nothing behind: no run folder, no W&B run, no output
folder; an existing run folder stays as it was."""

from __future__ import annotations

import pytest
from conftest import tiny

from vrnn_lightning.evaluate import main as eval_main
from vrnn_lightning.fit import main as fit_main
from vrnn_lightning.sample import main as sample_main

OFFLINE = "logger.wandb.mode=offline"  # a W&B run would leave wandb/ and wandb_run_id.txt


def _files(folder):
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*")} if folder.exists() else {}


@pytest.mark.parametrize(
    "bad",
    [
        # bad data: the corpus's folder is not there
        ["data.dataset=audio_folder", "data.root=/nonexistent/recordings"],
        # bad data: a valid split without a sequence, and validation not switched off
        ["data.valid_fraction=0.0"],
        # a Trainer argument Lightning refuses
        ["trainer.strategy=no_such_strategy"],
        # a key that is not in the schema
        ["trainer.no_such_key=1"],
    ],
    ids=["missing-root", "empty-valid", "bad-strategy", "unknown-key"],
)
def test_a_run_that_cannot_start_leaves_no_run_folder(tmp_path, bad, capsys):
    out = tmp_path / "runs" / "new"
    assert fit_main(tiny(tmp_path, f"out_dir={out}", OFFLINE, *bad)) == 2
    assert not out.exists() and not (tmp_path / "runs").exists()
    assert "vrnn-fit:" in capsys.readouterr().err


def test_a_failed_resume_leaves_the_run_folder_as_it_was(tmp_path):
    out = tmp_path / "run"
    run = [f"out_dir={out}", OFFLINE, "trainer.max_steps=5", "trainer.max_epochs=1"]
    assert fit_main(tiny(tmp_path, *run)) == 0
    before = _files(out)
    bad = ["ckpt_path=last", "trainer.max_steps=9", "trainer.strategy=no_such_strategy"]
    assert fit_main(tiny(tmp_path, *run, *bad)) == 2
    assert _files(out) == before


def test_eval_and_sample_that_cannot_start_make_no_output_folder(tmp_path):
    run = tmp_path / "run"
    args = [f"out_dir={run}", "trainer.max_steps=3", "trainer.max_epochs=1"]
    assert fit_main(tiny(tmp_path, *args)) == 0
    ckpt = str(run / "checkpoints" / "last.ckpt")
    gone = "data.root=/nonexistent"  # the checkpoint's data moved away: scoring cannot start
    out = tmp_path / "new" / "eval.json"
    assert eval_main(["--ckpt", ckpt, "--out", str(out), "data.dataset=audio_folder", gone]) == 2
    assert not (tmp_path / "new").exists()
    folder = tmp_path / "samples" / "a"
    assert sample_main(["--ckpt", ckpt, "--out", str(folder), "sample.n=0"]) == 2
    assert not (tmp_path / "samples").exists()
    assert sample_main(["--ckpt", ckpt, "--out", str(folder), "sample.n=1", "sample.steps=3"]) == 0
    assert (folder / "samples.npy").is_file()
