"""Bad configs are exit-2 messages naming the file, line and key, checked before any work:
no run folder is made (issue 11, items 11 and 12)."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny

from vrnn_lightning.fit import main as fit_main

BAD_VALUES = [
    ("data.batch_size=0", "an integer >= 1"),
    ("data.eval_batch_size=0", "an integer >= 1"),
    ("optim.lr=-1", "a number >= 0"),
    ("optim.eps=-1", "a number >= 0"),
    ("optim.betas=[2,3]", "two numbers in [0, 1)"),
    ("model.h_dim=0", "an integer >= 1"),
    ("model.n_components=0", "an integer >= 1"),
    ("model.z_dim=0", "an integer >= 1"),
    ("model.min_std=-1", "a number > 0"),
    ("model.mlp_layers=0", "an integer >= 1"),
    ("model.init=bogus", "one of paper, torch"),
    ("sample.primer_steps=-5", "an integer >= 0"),
    ("data.compression=bogus", "one of null, lzf, gzip"),
    ("trainer.precision=17", "one of 32-true"),
    ("trainer.devices=0", "a count >= 1"),
    ("trainer.max_epochs=-2", "an integer >= -1"),
    ("data.num_workers=-1", "an integer >= 0"),
    ("logger.wandb.mode=bogus", "one of null, offline, online, disabled"),
    ("eval.memory_gb=0", "null or a number of GB > 0"),
]


@pytest.mark.parametrize("override,expected", BAD_VALUES, ids=[b[0] for b in BAD_VALUES])
def test_bad_value_is_exit_2_naming_the_key_before_any_work(tmp_path, capsys, override, expected):
    code = fit_main(tiny(tmp_path, f"out_dir={tmp_path / 'run'}", override))
    err = capsys.readouterr().err
    assert code == 2
    key = override.split("=")[0]
    assert f"{key}: " in err and expected in err
    assert not (tmp_path / "run").exists() and not (tmp_path / "cache").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_gpu_accelerator_without_a_gpu_is_exit_2(tmp_path, capsys):
    code = fit_main(tiny(tmp_path, f"out_dir={tmp_path / 'run'}", "trainer.accelerator=gpu"))
    assert code == 2
    assert "trainer.accelerator: 'gpu' but this machine has no CUDA GPU" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


YAML_FILES = [
    ("syntax", "model:\n  h_dim: [1\n", ":3: YAML syntax error"),
    ("list", "- model\n- data\n", ": expected a mapping of sections"),
    ("binary", b"\x7fELF\x02\x01\x01\x00\xd0\xcf\x11", ": not a YAML config (not UTF-8 text)"),
    ("section", "data:\n  batch_size: 4\nmodel: 5\n", ":3: key 'model': expected a section"),
    ("type", "model:\n  h_dim: 12\n  z_dim: abc\n", ":3: key 'model.z_dim': Value 'abc'"),
]


@pytest.mark.parametrize(
    "text,expected", [y[1:] for y in YAML_FILES], ids=[y[0] for y in YAML_FILES]
)
def test_bad_yaml_is_exit_2_with_file_line_and_key(tmp_path, capsys, text, expected):
    path = tmp_path / "bad.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    code = fit_main(["--config", str(path), f"out_dir={tmp_path / 'run'}"])
    err = capsys.readouterr().err
    assert code == 2
    assert f"{path}{expected}" in err
    assert "Traceback" not in err
    assert not (tmp_path / "run").exists()
