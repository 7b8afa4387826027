"""The generated demo corpora: determinism, the corpus interface, and that the speech looks
like speech and the handwriting like handwriting (each check fails on a broken generator,
e.g. without the formant filter, or on white noise)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from vrnn_lightning.config import DataConfig
from vrnn_lightning.data.corpora import get_corpus
from vrnn_lightning.data.corpora import synthetic_handwriting as hw
from vrnn_lightning.data.corpora import synthetic_speech as sp
from vrnn_lightning.data.source import CorpusError

SR = 16000
CORPORA = ("synthetic_speech", "synthetic_handwriting")


def _digest(corpus: str, seed: int) -> str:
    return hashlib.sha256(get_corpus(corpus).synthesize(seed).tobytes()).hexdigest()


# ---------------------------------------------------------------- determinism and interface


@pytest.mark.slow
def test_same_seed_is_bit_identical_across_processes_and_thread_counts():
    here = {c: _digest(c, 3) for c in CORPORA}
    # the child skips vrnn_lightning/data/__init__.py (it imports Lightning, seconds of
    # start-up); the generators under test need only the corpora subpackage
    code = (
        "import hashlib, pathlib, sys, types, torch, vrnn_lightning\n"
        "data = types.ModuleType('vrnn_lightning.data')\n"
        "data.__path__ = [str(pathlib.Path(vrnn_lightning.__file__).parent / 'data')]\n"
        "sys.modules['vrnn_lightning.data'] = data\n"
        "from vrnn_lightning.data.corpora import get_corpus\n"
        "torch.set_num_threads(1)\n"
        f"for c in {CORPORA!r}:\n"
        "    print(hashlib.sha256(get_corpus(c).synthesize(3).tobytes()).hexdigest())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == [here[c] for c in CORPORA]
    assert here == {c: _digest(c, 3) for c in CORPORA}  # and within a process


@pytest.mark.parametrize("corpus", CORPORA)
def test_different_index_gives_a_different_sequence(corpus):
    assert len({_digest(corpus, i) for i in range(4)}) == 4


@pytest.mark.parametrize("corpus", CORPORA)
def test_splits_are_seeded_disjoint_and_sized(corpus):
    module = get_corpus(corpus)
    cfg = DataConfig(dataset=corpus)
    splits = module.find_sources(cfg)
    assert {k: len(v) for k, v in splits.items()} == {"train": 540, "valid": 30, "test": 30}
    names = [s.name for v in splits.values() for s in v]
    assert len(set(names)) == 600
    assert all(s.path is None and s.name == f"{corpus}/{s.seed:06d}" for s in splits["train"])
    assert module.find_sources(cfg) == splits  # deterministic
    other = module.find_sources(replace(cfg, split_seed=cfg.split_seed + 1))
    assert other["test"] != splits["test"]
    small = module.find_sources(replace(cfg, synthetic_sequences=20, valid_fraction=0.1))
    assert {k: len(v) for k, v in small.items()} == {"train": 17, "valid": 2, "test": 1}
    with pytest.raises(CorpusError):
        module.find_sources(replace(cfg, synthetic_sequences=0))


def test_speech_shape_dtype_and_level():
    cfg = DataConfig()
    source = sp.find_sources(cfg)["valid"][0]
    y = sp.read(source, cfg)
    assert y.shape == (32000,) and y.dtype == np.float32 and np.isfinite(y).all()
    assert np.abs(y).max() == pytest.approx(0.5)
    assert np.array_equal(y, sp.synthesize(source.seed, 16000, 2.0))
    short = sp.read(source, replace(cfg, sample_rate=8000, synthetic_seconds=0.75))
    assert short.shape == (6000,) and np.isfinite(short).all()
    # formants above the lower Nyquist are dropped, not piled up just below it
    power = np.abs(np.fft.rfft(short.astype(np.float64))) ** 2
    assert power[np.fft.rfftfreq(6000, 1 / 8000) > 3400].sum() < 0.02 * power.sum()
    assert np.array_equal(sp.read(replace(source, start=100, stop=300), cfg), y[100:300])


def test_handwriting_shape_dtype_and_pen_bits():
    cfg = DataConfig(dataset="synthetic_handwriting")
    for source in hw.find_sources(cfg)["test"][:5]:
        steps = hw.read(source, cfg)
        assert steps.dtype == np.float32 and steps.ndim == 2 and steps.shape[1] == 3
        assert 250 <= len(steps) <= 1000 and np.isfinite(steps).all()
        assert set(np.unique(steps[:, 0])) == {0.0, 1.0}
        assert steps[-1, 0] == 1.0  # the pen is lifted after the last point
        assert steps[:, 0].sum() >= 3  # several strokes per line


# ---------------------------------------------------------------- speech-likeness


def _frames(y: np.ndarray, size: int = 640, hop: int = 320) -> np.ndarray:
    """40 ms Hann-windowed frames."""
    idx = np.arange(0, len(y) - size + 1, hop)[:, None] + np.arange(size)
    return y[idx] * np.hanning(size)


def _high_fraction(frame: np.ndarray, above: float) -> float:
    power = np.abs(np.fft.rfft(frame)) ** 2
    return power[np.fft.rfftfreq(len(frame), 1 / SR) >= above].sum() / power.sum()


def _pitch(frame: np.ndarray) -> tuple[float, float]:
    """Autocorrelation pitch in 80-300 Hz: (f0 Hz, normalised peak height = periodicity)."""
    ac = np.correlate(frame, frame, "full")[len(frame) - 1 :]
    lo, hi = SR // 300, SR // 80
    lag = lo + int(np.argmax(ac[lo:hi]))
    return SR / lag, ac[lag] / ac[0]


def _lpc_formants(frame: np.ndarray, order: int = 12) -> np.ndarray:
    """Frequencies of the narrow (< 400 Hz bandwidth) LPC resonances above 150 Hz, sorted."""
    frame = np.append(frame[0], frame[1:] - 0.97 * frame[:-1])  # pre-emphasis
    r = np.correlate(frame, frame, "full")[len(frame) - 1 : len(frame) + order]
    toeplitz = r[np.abs(np.arange(order)[:, None] - np.arange(order))]
    a = np.linalg.solve(toeplitz + 1e-9 * r[0] * np.eye(order), -r[1:])
    roots = np.roots(np.concatenate([[1.0], a]))
    roots = roots[roots.imag > 0]
    freq = np.angle(roots) * SR / (2 * np.pi)
    bandwidth = -np.log(np.abs(roots)) * SR / np.pi
    return np.sort(freq[(bandwidth < 400) & (freq > 150)])


@pytest.fixture(scope="module")
def speech_frames():
    """Frames of six utterances above -20 dB of the loudest, split by periodicity."""
    y = np.concatenate([sp.synthesize(i).astype(np.float64) for i in range(6)])
    frames = _frames(y)
    energy = (frames**2).sum(axis=1)
    active = frames[energy > 0.01 * energy.max()]
    pitch = np.array([_pitch(f) for f in active])
    return {
        "all": frames,
        "energy": energy,
        "voiced": active[pitch[:, 1] > 0.5],
        "f0": pitch[pitch[:, 1] > 0.5, 0],
        "unvoiced": active[pitch[:, 1] < 0.3],
    }


def test_voiced_frames_have_a_speech_fundamental(speech_frames):
    assert len(speech_frames["voiced"]) > 150  # most of the speech is periodic
    f0 = speech_frames["f0"]
    assert 85 <= np.median(f0) <= 250
    assert np.mean((f0 >= 80) & (f0 <= 300)) > 0.95
    assert np.ptp(f0) > 30  # pitch moves (declination, accents, different speakers)


def test_voiced_frames_have_formants(speech_frames):
    formants = [_lpc_formants(f) for f in speech_frames["voiced"]]
    f1_ok = np.mean([len(f) > 0 and 200 <= f[0] <= 1000 for f in formants])
    f2_ok = np.mean([len(f) > 1 and 700 <= f[1] <= 3000 for f in formants])
    assert f1_ok > 0.85 and f2_ok > 0.75
    # a low-pass vocal tract: almost no voiced energy above 4 kHz
    assert np.median([_high_fraction(f, 4000) for f in speech_frames["voiced"]]) < 0.01


def test_fricatives_are_aperiodic_high_frequency_noise(speech_frames):
    unvoiced = speech_frames["unvoiced"]
    assert len(unvoiced) >= 10
    assert np.median([_high_fraction(f, 2500) for f in unvoiced]) > 0.6


def test_speech_has_syllables_and_pauses(speech_frames):
    level_db = 10 * np.log10(speech_frames["energy"] / speech_frames["energy"].max() + 1e-12)
    assert 0.05 < np.mean(level_db < -40) < 0.6  # short silences, but mostly sound
    # the level rises and falls with the syllables: many crossings of -20 dB
    loud = level_db > -20
    assert np.count_nonzero(loud[1:] != loud[:-1]) >= 6 * 6


# ---------------------------------------------------------------- handwriting-likeness


@pytest.fixture(scope="module")
def lines():
    return [hw.synthesize(i).astype(np.float64) for i in range(8)]


def test_offsets_are_small_and_smooth_within_strokes(lines):
    for steps in lines:
        after_lift = np.concatenate([[False], steps[:-1, 0] > 0])  # first step of a stroke
        within = steps[~after_lift, 1:]
        size = np.hypot(*within.T)
        assert size.max() < 0.5  # letters are about 1 high; a step is a fraction of that
        accel = np.diff(steps[:, 1:], axis=0)
        inside = ~after_lift[1:] & ~after_lift[:-1]
        assert np.abs(accel[inside]).max() < 0.3  # no kinks or jumps inside a stroke
        jumps = np.hypot(*steps[after_lift, 1:].T)
        assert np.median(jumps) > 3 * np.median(size)  # pen-up moves are real jumps


def test_lines_progress_left_to_right(lines):
    for steps in lines:
        x = np.cumsum(steps[:, 1])
        y = np.cumsum(steps[:, 2])
        assert np.corrcoef(np.arange(len(x)), x)[0, 1] > 0.95
        assert np.ptp(x) > 5 * np.ptp(y)  # a line is much wider than tall
        starts = x[np.flatnonzero(steps[:-1, 0]) + 1]  # where each later stroke begins
        assert np.mean(np.diff(starts) > 0) > 0.6  # mostly forward (diacritics jump back)


def test_strokes_loop_like_cursive(lines):
    # the pen turns back on itself: horizontal velocity changes sign within strokes,
    # about once per letter, unlike a straight or sawtooth line
    for steps in lines:
        dx = steps[:, 1]
        reversals = np.count_nonzero(np.sign(dx[1:]) * np.sign(dx[:-1]) < 0)
        assert reversals > len(steps) / 40
