"""data.norm_stats: given normalisation statistics instead of the train split's."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import tiny
from test_prepare import corpus, data_cfg, write_audio_corpus  # noqa: F401  (fixture)

from vrnn_lightning.config import ConfigError
from vrnn_lightning.data import FramesDataModule
from vrnn_lightning.data.norm_stats import load_norm_stats
from vrnn_lightning.fit import main as fit_main


@pytest.fixture
def make_dm(tmp_path, corpus):  # noqa: F811
    write_audio_corpus(tmp_path / "corpus", n_train=4, n_valid=2, n_test=2)

    def make(**kw):
        dm = FramesDataModule(data_cfg(tmp_path, **kw), seed=1)
        dm.prepare_data()
        dm.setup("fit")
        return dm

    return make


def test_the_data_is_normalised_with_exactly_the_given_values(tmp_path, make_dm):
    computed = make_dm().stats
    path = tmp_path / "blizzard_normal.npz"
    np.savez(path, X_mean=np.array([12.5]), X_std=np.float64(321.25))  # the original's names
    dm = make_dm(norm_stats=str(path))
    assert dm.stats["mean"] == 12.5 and dm.stats["std"] == 321.25
    assert computed["mean"] != 12.5
    for split in ("train", "valid", "test"):
        raw = dm.store(split).raw(0).astype(np.float32)
        np.testing.assert_allclose(dm.sequence(split, 0).numpy(), (raw - 12.5) / 321.25, rtol=1e-6)
    # DataLoader workers get the given statistics too
    dm = make_dm(norm_stats=str(path), num_workers=2, batch_size=2)
    loader = dm.train_dataloader()
    loader.batch_sampler.set_epoch(0)
    keys, batch = loader.batch_sampler.sampler.plan(0)[:2], next(iter(loader))
    for b, (i, start, n) in enumerate(keys):
        raw = dm.store("train").raw(i, start, start + n).astype(np.float32)
        np.testing.assert_allclose(batch["x"][b, :n].numpy(), (raw - 12.5) / 321.25, rtol=1e-6)


def test_json_statistics_in_other_units_are_converted(tmp_path):
    path = tmp_path / "stats.json"
    # e.g. SRNN's librosa floats in [-1, 1], for an int16 store (amplitude 1.0 = 32768)
    path.write_text(json.dumps({"mean": 0.001, "std": 0.1, "amplitude_scale": 1.0}))
    stats = load_norm_stats(path, amplitude_scale=32768.0)
    assert stats == pytest.approx({"mean": 32.768, "std": 3276.8})
    path.write_text(json.dumps({"mean": 2.0, "std": 4.0}))
    assert load_norm_stats(path, amplitude_scale=32768.0) == {"mean": 2.0, "std": 4.0}


@pytest.mark.parametrize(
    "content, expected",
    [
        ({"mu": 1.0, "sigma": 2.0}, "expected X_mean and X_std, or mean and std"),
        ({"X_mean": [1.0, 2.0], "X_std": 3.0}, "'X_mean' has 2 values"),
        ({"mean": 1.0, "std": 0.0}, "std > 0"),
        (None, "cannot read"),
    ],
)
def test_a_bad_file_is_an_error_naming_it(tmp_path, content, expected):
    path = tmp_path / "stats.npz"
    if content is not None:
        np.savez(path, **{k: np.asarray(v) for k, v in content.items()})
    with pytest.raises(ConfigError, match=expected) as err:
        load_norm_stats(path)
    assert str(path) in str(err.value)


def test_vrnn_fit_exits_2_naming_a_bad_statistics_file(tmp_path, capsys):
    path = tmp_path / "stats.json"
    path.write_text("{not json")
    args = tiny(tmp_path, f"out_dir={tmp_path / 'run'}", f"data.norm_stats={path}")
    assert fit_main(args) == 2
    assert f"data.norm_stats: cannot read {path}" in capsys.readouterr().err
