"""A failed resume writes nothing, and a changed model key is named (issue 11, item 7)."""

from __future__ import annotations

from conftest import tiny

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
