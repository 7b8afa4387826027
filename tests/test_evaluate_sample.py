"""End to end on the demo corpora: vrnn-fit (with the SampleCallback), vrnn-eval, vrnn-sample.

Tiny models and few steps: each corpus is trained once per module and shared by the tests.
model.init=torch: under the paper's small uniform init a tiny model's posterior sits on its
prior (KL ~ 0.01 nats), so IWAE and ELBO would differ by less than their noise; with torch's
init z matters and IWAE(40) - ELBO is tens of nats.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import wandb
from conftest import tiny

from vrnn_lightning import checkpoint, evaluate, fit, sample
from vrnn_lightning.callbacks import log_to_wandb
from vrnn_lightning.data.datamodule import FramesDataModule
from vrnn_lightning.generation import Generated, generate_and_save
from vrnn_lightning.model import VRNN

# conf/debug.yaml with 2-second clips (primers and the KL figure need long sequences),
# torch's initialisation, and samples written at every validation
TINY = [
    "data.synthetic_sequences=24",
    "data.synthetic_seconds=2.0",
    "model.init=torch",
    "trainer.max_epochs=2",
    "trainer.limit_train_batches=6",
    "trainer.limit_val_batches=2",
    "logger.log_every_n_steps=50",
    "sample.every_n_validations=1",
    "sample.n=2",
    "sample.steps=6",
]


def _fit(tmp_path_factory, name: str, overrides: list[str]) -> Path:
    tmp = tmp_path_factory.mktemp(name)
    run = tmp / "run"
    assert fit.main(tiny(tmp, *TINY, f"out_dir={run}", *overrides)) == 0
    return run


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> Path:
    return _fit(
        tmp_path_factory,
        "speech",
        [
            "data.dataset=synthetic_speech",
            "data.synthetic_seconds=0.5",
            "model.variant=vrnn_gmm",
            "trainer.num_sanity_val_steps=1",  # the sanity check must not write samples
        ],
    )


@pytest.fixture(scope="module")
def handwriting(tmp_path_factory) -> Path:
    # rnn_gmm: the exact-likelihood branch; samples every 2nd validation only
    return _fit(
        tmp_path_factory,
        "hand",
        [
            "data.dataset=synthetic_handwriting",
            "model.variant=rnn_gmm",
            "sample.every_n_validations=2",
        ],
    )


def _ckpt(run: Path) -> str:
    return str(run / "checkpoints" / "last.ckpt")


# ------------------------------------------------------------------------ the callback


def test_callback_wrote_audio_samples_each_validation(speech):
    folders = sorted(p.name for p in (speech / "samples").iterdir())
    # 6 training batches per epoch, 2 epochs; no step=0 from the sanity check
    assert folders == ["step=12", "step=6"]
    last = speech / "samples" / "step=12"
    for name in (
        "sample_00_mean.wav",
        "sample_01_sampled.wav",
        "waveforms.png",
        "kl_valid_00.png",
    ):
        assert (last / name).stat().st_size > 0, name
    wave, rate = sf.read(str(last / "sample_00_mean.wav"))
    assert rate == 16000 and wave.shape == (6 * 200,)


def test_callback_every_second_validation_draws_strokes(handwriting):
    folders = [p.name for p in (handwriting / "samples").iterdir()]
    assert folders == ["step=12"]  # validations 1 and 2: only the 2nd writes samples
    out = handwriting / "samples" / "step=12"
    assert (out / "strokes.png").stat().st_size > 0
    assert not list(out.glob("*.wav")) and not (out / "kl_valid_00.png").exists()
    steps = np.load(out / "samples.npy")
    assert steps.shape == (2, 6, 3) and set(np.unique(steps[..., 0])) <= {0.0, 1.0}


def test_wandb_failure_is_a_warning_not_an_error(tmp_path):
    class BrokenLogger:
        def log_image(self, *args, **kwargs):
            raise RuntimeError("wandb is offline")

    generated = Generated(folder=tmp_path, images=[(tmp_path / "x.png", "x")])
    with pytest.warns(UserWarning, match="could not log samples to W&B: wandb is offline"):
        log_to_wandb(BrokenLogger(), generated, step=3)


def test_samples_reach_an_offline_wandb_run(tmp_path_factory):
    # the one test with W&B on: offline, no account; media land in the run's own folder
    overrides = [
        "data.dataset=synthetic_speech",
        "data.synthetic_seconds=0.5",
        "logger.wandb.mode=offline",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=2",
    ]
    try:
        run = _fit(tmp_path_factory, "wandb", overrides)
    finally:
        wandb.finish()  # fit leaves its run open in this process; the next tests want none
    media = [p.relative_to(run / "wandb") for p in (run / "wandb").rglob("media/*/samples/*")]
    names = sorted(p.name.split("_")[0] for p in media)
    assert names.count("audio") == 4  # 2 samples x (decoder mean, sampled frames)
    assert any(n.startswith("waveforms") for n in names)
    assert any(n.startswith("kl") for n in names)


# ------------------------------------------------------------------------ vrnn-eval


def _check_result(result: dict, split: str, k: int) -> None:
    for key in ("elbo", "iwae", "smc", "paper_estimate"):
        assert {"per_sequence", "per_frame"} <= set(result[key])
        assert math.isfinite(result[key]["per_sequence"] + result[key]["per_frame"])
        # per frame is the total over frames: the same total as per sequence * sequences
        total = result[key]["per_sequence"] * result["n_sequences"]
        assert result[key]["per_frame"] * result["n_frames"] == pytest.approx(total)
    smc = result["smc"]
    assert smc["resampling"] == "systematic" and smc["ess_threshold"] == 0.5
    assert smc["resampled_per_sequence"] * result["n_sequences"] == pytest.approx(
        smc["resampling_rate"] * result["n_frames"]
    )
    assert result["split"] == split and result["iw_samples"] == k
    assert result["dataset"].startswith("synthetic_") and result["checkpoint"].endswith(".ckpt")
    assert 0 < result["n_sequences"] <= result["n_frames"]


def test_eval_vrnn_iwae_tightens_the_elbo(speech, tmp_path, capsys):
    out = tmp_path / "valid.json"
    args = ["--ckpt", _ckpt(speech), "--out", str(out), "eval.split=valid", "eval.batch_size=3"]
    assert evaluate.main(args) == 0
    result = json.loads(out.read_text())
    _check_result(result, "valid", 40)
    assert result["variant"] == "vrnn_gmm"
    assert result["n_frames"] == result["n_sequences"] * 8  # full 8-frame windows
    assert result["iwae"]["per_sequence"] > result["elbo"]["per_sequence"]
    assert result["smc"]["per_sequence"] > result["elbo"]["per_sequence"]
    screen = capsys.readouterr().out
    assert "IWAE(40) >=" in screen and "SMC(40) >=" in screen and "paper per-step" in screen


def test_eval_default_output_is_in_the_run_folder(speech):
    assert evaluate.main(["--ckpt", _ckpt(speech), "eval.iw_samples=5"]) == 0
    result = json.loads((speech / "eval_test.json").read_text())
    _check_result(result, "test", 5)


def test_eval_rnn_reports_the_exact_likelihood_three_times(handwriting, tmp_path, capsys):
    out = tmp_path / "hand.json"
    assert evaluate.main(["--ckpt", _ckpt(handwriting), "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    _check_result(result, "test", 40)
    assert result["elbo"] == result["iwae"] == result["paper_estimate"]
    exact = {k: result["smc"][k] for k in ("per_sequence", "per_frame", "nonfinite_sequences")}
    assert exact == result["elbo"] and result["smc"]["resampled_per_sequence"] == 0
    assert "exact log-likelihood" in capsys.readouterr().out


def test_eval_under_a_small_memory_budget_scores_in_parts(speech, handwriting, tmp_path, capsys):
    """eval.memory_gb bounds the rows of every pass; the rnn_* exact likelihood is the same,
    a VRNN's estimates the same up to Monte Carlo noise (other draws)."""
    from vrnn_lightning.model import VRNN as Model

    rows, forward = [], Model.forward

    def counted(self, x, mask=None, n_samples=1, **kw):
        rows.append(n_samples * x.shape[0])
        return forward(self, x, mask, n_samples, **kw)

    out = tmp_path / "eval.json"
    args = ["--out", str(out), "eval.split=valid", "eval.batch_size=3", "eval.iw_samples=8"]
    results = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Model, "forward", counted)
        # keyed by the fixture, not its folder (pytest numbers those in the session's order)
        for name, run, budget in [("speech", speech, "null"), ("speech", speech, "1e-5"),
                                  ("hand", handwriting, "null"),
                                  ("hand", handwriting, "1e-6")]:  # fmt: skip
            rows.clear()
            assert evaluate.main(["--ckpt", _ckpt(run), *args, f"eval.memory_gb={budget}"]) == 0
            results[name, budget] = json.loads(out.read_text()), max(rows)
    (whole, whole_rows), (split, split_rows) = results["speech", "null"], results["speech", "1e-5"]
    assert whole_rows == 24 and split_rows < 8  # 3 sequences x 8 samples; samples in groups
    # and vrnn-eval said so, and what would be faster
    notes = capsys.readouterr().err
    assert notes.count("scored in parts") == 2 and "within eval.memory_gb=1e-05" in notes
    assert whole["n_frames"] == split["n_frames"] and whole["n_sequences"] == split["n_sequences"]
    for name in ("elbo", "iwae", "smc"):
        assert math.isfinite(split[name]["per_sequence"])
        assert split[name]["per_frame"] == pytest.approx(whole[name]["per_frame"], rel=0.05)
    assert split["iwae"]["per_sequence"] > split["elbo"]["per_sequence"]
    (exact, _), (exact_split, exact_rows) = results["hand", "null"], results["hand", "1e-6"]
    assert exact_rows == 1
    for name in ("elbo", "iwae", "smc"):  # the same sums, batched differently: float rounding
        assert exact_split[name]["per_sequence"] == pytest.approx(exact[name]["per_sequence"])


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("eval.bogus=1", "eval.bogus"),
        ("eval.iw_samples=many", "eval.iw_samples"),
        ("eval.split=dev", "eval.split"),
        ("eval.resampling=stratified", "eval.resampling"),
        ("eval.ess_threshold=2", "eval.ess_threshold"),
        ("model.z_dim=8", "model.z_dim"),
        ("data.frame_size=100", "data.frame_size"),
        ("data.dataset=synthetic_handwriting", "data.dataset"),
    ],
)
def test_eval_bad_override_exits_2_naming_the_key(speech, capsys, override, named):
    assert evaluate.main(["--ckpt", _ckpt(speech), override]) == 2
    assert named in capsys.readouterr().err


def test_missing_checkpoint_exits_2(tmp_path, capsys):
    missing = str(tmp_path / "nope.ckpt")
    assert evaluate.main(["--ckpt", missing]) == 2
    assert sample.main(["--ckpt", missing, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count(missing) == 2 and "does not exist" in err


# ------------------------------------------------------------------------ vrnn-sample


def test_sample_audio_continues_a_primer(speech, tmp_path):
    out = tmp_path / "samples"
    args = ["--ckpt", _ckpt(speech), "--out", str(out), "sample.n=3", "sample.steps=5"]
    # raw levels: the mean WAV is then the de-normalised means themselves
    assert sample.main([*args, "sample.primer_steps=4", "sample.peak_normalise=false"]) == 0
    for i in range(3):
        for name in (f"sample_{i:02d}_mean.wav", f"sample_{i:02d}_sampled.wav"):
            wave, rate = sf.read(str(out / name))
            assert rate == 16000 and wave.shape == ((4 + 5) * 200,), name
            assert np.isfinite(wave).all()
    assert (out / "waveforms.png").is_file() and (out / "kl_valid_00.png").is_file()
    # the primer is valid sequence 0, copied unchanged (up to 16-bit rounding)
    means = np.load(out / "means.npy")
    primer, _ = sf.read(str(out / "sample_01_mean.wav"))
    np.testing.assert_allclose(primer[: 4 * 200], means[1, :4].reshape(-1), atol=1 / 2**14)
    np.testing.assert_allclose(means[0, :4], means[2, :4])
    assert not np.allclose(means[0, 4:], means[2, 4:])  # each continuation draws its own


def test_sample_handwriting_png(handwriting, tmp_path, capsys):
    out = tmp_path / "hand"
    assert sample.main(["--ckpt", _ckpt(handwriting), "--out", str(out), "sample.steps=30"]) == 0
    assert (out / "strokes.png").stat().st_size > 0
    assert np.load(out / "samples.npy").shape == (2, 30, 3)
    assert "strokes.png" in capsys.readouterr().out


def test_sample_bad_override_exits_2(speech, tmp_path, capsys):
    args = ["--ckpt", _ckpt(speech), "--out", str(tmp_path)]
    assert sample.main([*args, "sample.nn=3"]) == 2
    assert "sample.nn" in capsys.readouterr().err
    assert sample.main([*args, "sample.primer_steps=100000"]) == 2
    assert "sample.primer_steps" in capsys.readouterr().err


def test_eval_whole_variable_length_sequences(handwriting, tmp_path):
    # padded batches of whole lines of different lengths: every real step counted, no padding
    out = tmp_path / "full.json"
    args = ["--ckpt", _ckpt(handwriting), "--out", str(out), "eval.split=train"]
    assert evaluate.main([*args, "data.eval_full_sequences=true", "eval.batch_size=5"]) == 0
    result = json.loads(out.read_text())
    _check_result(result, "train", 40)
    module, cfg = checkpoint.load_checkpoint(_ckpt(handwriting), [])
    lengths = checkpoint.datamodule_for(module, cfg).store("train").lengths
    assert result["n_sequences"] == len(lengths) and result["n_frames"] == int(lengths.sum())
    assert len(set(lengths.tolist())) > 1
    # the same sequences in batches of 1 (no padding at all) give the same exact likelihood
    assert evaluate.main([*args, "data.eval_full_sequences=true", "eval.batch_size=1"]) == 0
    unpadded = json.loads(out.read_text())
    assert unpadded["elbo"]["per_frame"] == pytest.approx(result["elbo"]["per_frame"], rel=1e-5)


def test_generate_and_save_vrnn_strokes_with_kl_figure(handwriting, tmp_path):
    # a VRNN on the handwriting data (untrained: the files, not the quality, are under test)
    _, cfg = checkpoint.load_checkpoint(_ckpt(handwriting), [])
    cfg.model.variant = "vrnn_gauss"
    model = VRNN(observation="strokes", x_dim=3, **cfg.model)
    dm = FramesDataModule(cfg.data)
    before = torch.random.get_rng_state()
    out = generate_and_save(model, dm, tmp_path, n=2, steps=7, primer_steps=3, seed=5)
    assert torch.equal(torch.random.get_rng_state(), before)  # the caller's stream untouched
    assert model.training  # put back as it was
    assert [p.name for p, _ in out.images] == ["strokes.png", "kl_valid_00.png"]
    samples = np.load(tmp_path / "samples.npy")
    assert samples.shape == (2, 3 + 7, 3)
    primer = dm.denormalise(dm.sequence("valid", 0)[:3].numpy())
    np.testing.assert_allclose(samples[:, :3], np.stack([primer, primer]), rtol=1e-6)
    again = generate_and_save(model, dm, tmp_path / "again", n=2, steps=7, primer_steps=3, seed=5)
    np.testing.assert_array_equal(np.load(again.folder / "samples.npy"), samples)  # seeded
