"""A trained model on its own: safe loading, the self-describing checkpoint, export, scoring
a user's files, audible samples.

Two tiny runs, trained once per module: the synthetic demo corpus (vrnn_gmm) and a handful of
FSDD recordings (real 8 kHz WAVs read in place through symlinks, split so that the test
split is one file).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import FSDD_DIR, fsdd_subset, tiny

from vrnn_lightning import evaluate, export, fit, load_pretrained, sample
from vrnn_lightning.checkpoint import DESCRIPTION_KEY, load_trained
from vrnn_lightning.data.store import FrameStore

# conf/debug.yaml for 3 batches, with torch's initialisation (under the paper's, a tiny model's
# z barely matters: its ELBO and IWAE would agree whatever the sampling) and the samples and K
# that the tests count on
TINY = [
    "model.init=torch",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=3",
    "trainer.limit_val_batches=1",
    "sample.n=2",
    "sample.steps=6",
    "eval.iw_samples=3",
]


def _last(run: Path) -> Path:
    return run / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("speech")
    assert fit.main(tiny(tmp, *TINY, f"out_dir={tmp / 'run'}")) == 0
    return tmp / "run"


@pytest.fixture(scope="module")
def fsdd(tmp_path_factory) -> Path:
    if not FSDD_DIR.is_dir():
        pytest.skip(f"no FSDD recordings at {FSDD_DIR}")
    tmp = tmp_path_factory.mktemp("fsdd")
    root = fsdd_subset(tmp / "recordings", 8)
    args = tiny(
        tmp,
        *TINY,
        "data.dataset=audio_folder",
        f"data.root={root}",
        "data.sample_rate=8000",
        "data.valid_fraction=0.125",
        "data.test_fraction=0.125",
        "data.eval_full_sequences=true",
        f"out_dir={tmp / 'run'}",
    )
    assert fit.main(args) == 0
    return tmp / "run"


# ------------------------------------------------------------------------ safe loading


class Payload:
    """Unpickling this runs ``touch <marker>``: what a malicious checkpoint does."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("command", [evaluate, sample, export])
def test_a_payload_checkpoint_runs_nothing_and_exits_2(command, tmp_path, monkeypatch, capsys):
    # torch < 2.6 loaded with weights_only=False by default; this variable restores that
    # default on any torch, so the test shows what an older torch would have done
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": Payload(marker)}, evil)
    args = ["--ckpt", str(evil)]
    if command is not evaluate:
        args += ["--out", str(tmp_path / "out")]
    assert command.main(args) == 2
    assert not marker.exists(), "loading the checkpoint ran its code"
    err = capsys.readouterr().err
    assert str(evil) in err and "refused" in err and "Nothing from the file was run" in err


def test_the_module_loads_checkpoints_weights_only(tmp_path, monkeypatch):
    import pickle

    from vrnn_lightning.module import VRNNModule

    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # torch < 2.6's default
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": Payload(marker)}, evil)
    with pytest.raises(pickle.UnpicklingError):
        VRNNModule.load_from_checkpoint(evil)
    assert not marker.exists()


def test_a_plain_pickle_payload_is_not_loaded(tmp_path, capsys):
    import pickle

    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.ckpt"
    evil.write_bytes(pickle.dumps(Payload(marker)))
    assert evaluate.main(["--ckpt", str(evil)]) == 2
    assert not marker.exists()
    assert "not a torch checkpoint" in capsys.readouterr().err


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda p: p.mkdir(), "is a folder, not a checkpoint file or an export folder"),
        (lambda p: p.write_text("hello, not a model\n"), "is a text file"),
        (lambda p: torch.save({"weights": torch.ones(2)}, p), "not a vrnn-fit checkpoint"),
        (lambda p: torch.save(torch.ones(3, 2), p), "a bare tensor of shape (3, 2)"),
    ],
    ids=["folder", "text", "foreign-dict", "bare-tensor"],
)
def test_what_is_not_a_checkpoint_is_named(make, expected, tmp_path, capsys):
    path = tmp_path / "thing.ckpt"
    make(path)
    assert evaluate.main(["--ckpt", str(path)]) == 2
    err = capsys.readouterr().err
    assert expected in err and str(path) in err


def test_checkpoints_load_weights_only(speech):
    ckpt = torch.load(_last(speech), map_location="cpu", weights_only=True)
    assert DESCRIPTION_KEY in ckpt


# ------------------------------------------------------------------------ what a checkpoint says


def test_a_checkpoint_describes_its_data_and_normalisation(speech):
    ckpt = torch.load(_last(speech), map_location="cpu", weights_only=True)
    d = ckpt[DESCRIPTION_KEY]
    data = d["data"]
    assert data["observation"] == "audio" and data["x_dim"] == 200 and data["sample_rate"] == 16000
    (store,) = (speech.parent / "cache").glob("synthetic_speech-*/train.h5")
    train = FrameStore(store)
    assert data["normalisation"] == {
        "observation": "audio",
        "mean": train.mean,
        "std": train.std,
        "amplitude_scale": train.amplitude_scale,
    }
    assert data["fingerprint"] == train.attrs["fingerprint"]
    assert d["config"]["model"]["h_dim"] == 16 and "val/elbo" in d["metrics"]
    assert d["step"] == ckpt["global_step"] and d["command"].startswith("vrnn-fit ")


def test_sample_needs_no_corpus_and_no_data_cache(speech, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(speech, run)
    out = tmp_path / "samples"
    cache = tmp_path / "no-cache"  # nothing prepared, and nothing gets prepared
    args = ["--ckpt", str(_last(run)), "--out", str(out), f"data.cache_dir={cache}"]
    assert sample.main(args) == 0
    assert not cache.exists()
    for i in range(2):
        wave, rate = sf.read(str(out / f"sample_{i:02d}_mean.wav"))
        assert rate == 16000 and wave.shape == (6 * 200,)
        assert (out / f"sample_{i:02d}_sampled.wav").is_file()
    assert not (out / "kl_valid_00.png").exists()  # the KL figure needs the validation data


def test_eval_normalises_with_the_model_statistics_and_says_the_data_differs(
    speech, tmp_path, capsys
):
    d = torch.load(_last(speech), map_location="cpu", weights_only=True)[DESCRIPTION_KEY]
    out = tmp_path / "eval.json"
    # other sequences: another store, with other statistics
    args = ["--ckpt", str(_last(speech)), "--out", str(out), "data.synthetic_sequences=16"]
    assert evaluate.main(args) == 0
    result = json.loads(out.read_text())
    assert result["normalisation"]["mean"] == pytest.approx(d["data"]["normalisation"]["mean"])
    assert result["normalisation"]["std"] == pytest.approx(d["data"]["normalisation"]["std"])
    assert "differs from the store the model was trained on" in capsys.readouterr().err
    assert result["data_differs"]
    # the training store itself: no note
    assert evaluate.main(["--ckpt", str(_last(speech)), "--out", str(out)]) == 0
    assert "differs" not in capsys.readouterr().err
    assert json.loads(out.read_text())["data_differs"] is None


# ------------------------------------------------------------------------ scoring your own files


def _test_file(run: Path) -> Path:
    (store,) = (run.parent / "cache").glob("audio_folder-*/test.h5")
    (name,) = FrameStore(store).names
    return run.parent / "recordings" / name


def test_a_file_scores_as_its_test_split_sequence(fsdd, tmp_path):
    split = tmp_path / "split.json"
    ckpt = str(_last(fsdd))
    assert evaluate.main(["--ckpt", ckpt, "--out", str(split), "eval.batch_size=1"]) == 0
    files = tmp_path / "files.json"
    junk = tmp_path / "junk.wav"
    junk.write_text("not audio")
    inputs = ["--inputs", str(_test_file(fsdd)), str(junk), str(tmp_path / "missing.wav")]
    # an override after the files is an override, not a file
    assert evaluate.main(["--ckpt", ckpt, *inputs, "eval.batch_size=1", "--out", str(files)]) == 0
    by_split, by_file = json.loads(split.read_text()), json.loads(files.read_text())
    assert by_split["n_sequences"] == 1 and len(by_file["files"]) == 1
    row = by_file["files"][0]
    assert row["n_frames"] == by_split["n_frames"]
    for name in ("elbo", "iwae", "paper_estimate"):
        assert row[name]["per_sequence"] == pytest.approx(
            by_split[name]["per_sequence"], rel=1e-5
        ), name
        assert by_file[name]["per_frame"] == pytest.approx(by_split[name]["per_frame"], rel=1e-5)
    skipped = {Path(s["file"]).name: s["reason"] for s in by_file["skipped"]}
    assert set(skipped) == {"junk.wav", "missing.wav"}
    assert "not a readable audio file" in skipped["junk.wav"]


def test_a_folder_of_inputs_is_scored_file_by_file(fsdd, tmp_path, capsys):
    out = tmp_path / "files.json"
    folder = fsdd.parent / "recordings"
    args = ["--ckpt", str(_last(fsdd)), "--inputs", str(folder), "--out", str(out)]
    assert evaluate.main(args) == 0
    result = json.loads(out.read_text())
    assert result["n_sequences"] == 8 and result["skipped"] == []
    assert "per file" in capsys.readouterr().out


def test_no_readable_input_exits_2(fsdd, tmp_path, capsys):
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"\0" * 100)
    assert evaluate.main(["--ckpt", str(_last(fsdd)), "--inputs", str(junk)]) == 2
    assert "no file could be scored" in capsys.readouterr().err


# ------------------------------------------------------------------------ export


def test_export_writes_safetensors_config_and_a_model_card(fsdd, tmp_path):
    from safetensors.torch import load_file

    folder = tmp_path / "exported"
    assert export.main(["--ckpt", str(_last(fsdd)), "--out", str(folder)]) == 0
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
    ]
    weights = load_file(folder / "model.safetensors")
    assert all(isinstance(v, torch.Tensor) for v in weights.values())
    assert not any("exp_avg" in k or "optimizer" in k for k in weights)
    assert (folder / "model.safetensors").stat().st_size < _last(fsdd).stat().st_size / 2
    card = (folder / "README.md").read_text()
    for words in ("vrnn_gmm on audio_folder", "parameters", "vrnn-fit ", "load_pretrained"):
        assert words in card, words
    config = json.loads((folder / "config.json").read_text())
    assert config["data"]["normalisation"]["std"] > 0

    trained = load_pretrained(folder)
    original = load_trained(_last(fsdd))
    for key, value in original.model.state_dict().items():
        torch.testing.assert_close(trained.model.state_dict()[key], value)
    assert trained.data == original.data

    # the export folder wherever a checkpoint goes; its figures are the checkpoint's
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    wav = str(_test_file(fsdd))
    assert evaluate.main(["--ckpt", str(folder), "--inputs", wav, "--out", str(a)]) == 0
    assert evaluate.main(["--ckpt", str(_last(fsdd)), "--inputs", wav, "--out", str(b)]) == 0
    assert json.loads(a.read_text())["elbo"] == json.loads(b.read_text())["elbo"]
    assert sample.main(["--ckpt", str(folder), "--out", str(tmp_path / "s")]) == 0
    assert (tmp_path / "s" / "sample_00_mean.wav").is_file()


def test_export_refuses_a_folder_with_files(fsdd, tmp_path, capsys):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    assert export.main(["--ckpt", str(_last(fsdd)), "--out", str(tmp_path / "x")]) == 2
    assert "not an empty folder" in capsys.readouterr().err


# ------------------------------------------------------------------------ audible samples


def test_decoder_means_are_peak_normalised_and_the_gain_recorded(speech, tmp_path):
    out = tmp_path / "loud"
    assert sample.main(["--ckpt", str(_last(speech)), "--out", str(out)]) == 0
    info = json.loads((out / "samples.json").read_text())
    means = np.load(out / "means.npy").reshape(2, -1)
    for i in range(2):
        wave, _ = sf.read(str(out / f"sample_{i:02d}_mean.wav"))
        assert np.abs(wave).max() == pytest.approx(10 ** (-1 / 20), abs=1e-3)  # -1 dBFS
        gain = info[f"sample_{i:02d}_mean.wav"]["gain"]
        np.testing.assert_allclose(wave, np.clip(means[i] * gain, -1, 1), atol=1 / 2**14)
        with sf.SoundFile(out / f"sample_{i:02d}_mean.wav") as f:
            assert "peak-normalised" in f.comment
    raw = tmp_path / "raw"
    args = ["--ckpt", str(_last(speech)), "--out", str(raw), "sample.peak_normalise=false"]
    assert sample.main(args) == 0
    wave, _ = sf.read(str(raw / "sample_00_mean.wav"))
    np.testing.assert_allclose(wave, np.clip(means[0], -1, 1), atol=1 / 2**14)


# ------------------------------------------------------------------------ the command line


@pytest.mark.parametrize("command", [evaluate, sample])
def test_print_config_shows_the_checkpoint_config_with_overrides(command, speech, capsys):
    import yaml

    args = ["--ckpt", str(_last(speech)), "--print-config", "eval.iw_samples=7", "sample.n=5"]
    assert command.main(args) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["h_dim"] == 16
    assert printed["eval"]["iw_samples"] == 7 and printed["sample"]["n"] == 5


def test_fsdd_is_a_named_datamodule_split_by_speaker():
    from vrnn_lightning.data import FSDD
    from vrnn_lightning.data.pipeline import locate

    if not FSDD_DIR.is_dir():
        pytest.skip(f"no FSDD recordings at {FSDD_DIR}")
    dm = FSDD(root=str(FSDD_DIR), batch_size=8)
    assert dm.cfg.dataset == "audio_folder" and dm.sample_rate == 8000 and dm.x_dim == 200
    _, sources, _, _ = locate(dm.cfg)
    speakers = {split: {s.speaker for s in found} for split, found in sources.items()}
    assert all(speakers.values())
    assert not speakers["train"] & speakers["valid"]
    assert not speakers["train"] & speakers["test"]


def test_stroke_files_are_scored_with_the_pen_model(tmp_path):
    run = tmp_path / "run"
    args = tiny(
        tmp_path,
        *TINY,
        "data.dataset=synthetic_handwriting",
        "model.variant=rnn_gmm",
        f"out_dir={run}",
    )
    assert fit.main(args) == 0
    words = tmp_path / "words"
    words.mkdir()
    t = np.linspace(0, 6, 40)
    points = np.stack([100 + 30 * t, 200 + 20 * np.sin(3 * t), (t % 2 < 1.8)], 1).astype(int)
    lines = ["loop", *(" ".join(map(str, p)) for p in points)]
    (words / "loop.txt").write_text("\n".join(lines) + "\n")
    (words / "broken.txt").write_text("word\n1 2\n")
    out = tmp_path / "strokes.json"
    args = ["--ckpt", str(_last(run)), "--inputs", str(words), "--out", str(out)]
    assert evaluate.main(args) == 0
    result = json.loads(out.read_text())
    (row,) = result["files"]
    assert Path(row["file"]).name == "loop.txt" and np.isfinite(row["elbo"]["per_sequence"])
    # rnn_*: every estimate is the exact log-likelihood
    assert row["elbo"] == row["iwae"] == row["paper_estimate"]
    (skipped,) = result["skipped"]
    assert "broken.txt" in skipped["file"] and "expected 'x y pen'" in skipped["reason"]


def test_a_wav_at_another_rate_in_stereo_is_resampled_downmixed_and_framed(speech, tmp_path):
    wav = tmp_path / "stereo_8k.wav"
    rng = np.random.default_rng(0)
    sf.write(wav, 0.1 * rng.standard_normal((4000, 2)), 8000, subtype="FLOAT")  # 0.5 s
    out = tmp_path / "wav.json"
    args = ["--ckpt", str(_last(speech)), "--inputs", str(wav), "--out", str(out)]
    assert evaluate.main(args) == 0
    (row,) = json.loads(out.read_text())["files"]
    assert row["n_frames"] == 8000 // 200  # 0.5 s at the model's 16 kHz, 200-sample frames
    assert np.isfinite(row["elbo"]["per_sequence"])


def test_a_long_input_is_scored_within_eval_memory_gb(speech, tmp_path, capsys):
    """One file is one sequence: a budget below its K samples scores them in groups, says so,
    and gives the same figures up to Monte Carlo noise."""
    wav = tmp_path / "long.wav"
    sf.write(wav, 0.1 * np.random.default_rng(0).standard_normal(32000), 16000)  # 2 s
    out = tmp_path / "long.json"
    args = ["--ckpt", str(_last(speech)), "--inputs", str(wav), "--out", str(out)]
    results = []
    for budget in ("null", "1e-5"):
        assert evaluate.main([*args, "eval.iw_samples=8", f"eval.memory_gb={budget}"]) == 0
        results.append(json.loads(out.read_text())["files"][0])
    assert "1 of 1 files were scored in parts" in capsys.readouterr().err
    whole, split = results
    assert split["n_frames"] == whole["n_frames"] == 160
    for name in ("elbo", "iwae", "smc"):
        assert split[name]["per_frame"] == pytest.approx(whole[name]["per_frame"], rel=0.05)


def test_a_checkpoint_from_a_plain_trainer_describes_itself_too(tmp_path):
    import lightning as L

    from vrnn_lightning.data import SyntheticSpeech
    from vrnn_lightning.module import VRNNModule

    dm = SyntheticSpeech(
        synthetic_sequences=12,
        synthetic_seconds=0.25,
        seq_len=8,
        batch_size=8,
        cache_dir=str(tmp_path / "cache"),
    )
    model = {"variant": "vrnn_gauss", "h_dim": 16, "z_dim": 4, "mlp_layers": 1}
    module = VRNNModule.for_data(dm, model=model)
    trainer = L.Trainer(
        max_steps=2, default_root_dir=str(tmp_path), logger=False, enable_progress_bar=False
    )
    trainer.fit(module, datamodule=dm)
    (ckpt,) = tmp_path.rglob("*.ckpt")
    trained = load_pretrained(ckpt)
    assert trained.data.normalisation == dm.store("train").normalisation
    assert trained.config.data.synthetic_sequences == 12 and trained.step == 2
    out = tmp_path / "samples"
    cache = tmp_path / "elsewhere"
    assert sample.main(["--ckpt", str(ckpt), "--out", str(out), f"data.cache_dir={cache}"]) == 0
    assert (out / "sample_00_mean.wav").is_file() and not cache.exists()
