"""Synthetic speech: the embedded demo audio corpus, generated on the fly (no download).

A source-filter synthesiser in the spirit of Klatt's cascade formant synthesiser:

- source: a Rosenberg glottal pulse train, differentiated (lip radiation), with a smooth
  pitch contour (speaker base 90-220 Hz, declination, accents of up to +35% on stressed
  syllables, slow wander; clipped to 75-300 Hz) and a little pulsed aspiration noise;
- filter: a cascade of five 2-pole formant resonators whose frequencies and bandwidths
  are drawn per vowel and interpolated between vowels (so consonants become transitions);
- consonants: band-passed noise for fricatives (s, sh, f), silence plus a burst for stops;
- syllable amplitude envelopes and pauses between words.

The time-varying vocal tract is filtered by overlap-add: the excitation is cut into
Hann-windowed 20 ms blocks (hop 10 ms, which sum to one), each block is filtered with the
formants at its centre, and the filtered blocks (with their decaying tails) are added back.
All filtering is torchaudio's ``lfilter`` in float64.

Every sequence is a pure function of its seed: numpy's PCG64 streams and single-threaded
CPU filtering give bit-identical output across processes (tested) with the same library
versions; about 8 ms of one core per 2-s utterance at 16 kHz.
"""

from __future__ import annotations

import numpy as np
import torch
import torchaudio.functional as AF

from vrnn_lightning.data.corpora.splits import split_shuffled
from vrnn_lightning.data.source import CorpusError, Source

OBSERVATION = "audio"
NAME = "synthetic_speech"
_SALT = 0x5BEEC4  # keeps this corpus's random streams apart from other generated corpora

# Average adult male formants F1-F3 (Hz) of ten American English vowels (Peterson & Barney 1952).
VOWELS = np.array(
    [
        [270, 2290, 3010],  # iy  "beet"
        [390, 1990, 2550],  # ih  "bit"
        [530, 1840, 2480],  # eh  "bet"
        [660, 1720, 2410],  # ae  "bat"
        [520, 1190, 2390],  # ah  "but"
        [730, 1090, 2440],  # aa  "father"
        [570, 840, 2410],  # ao  "bought"
        [440, 1020, 2240],  # uh  "book"
        [300, 870, 2240],  # uw  "boot"
        [490, 1350, 1690],  # er  "bird"
    ],
    dtype=np.float64,
)
# Fricative noise colours: (centre Hz, Q); Q None means high-pass above the centre.
FRICATIVES = {"s": (5500.0, 1.5), "sh": (2800.0, 1.8), "f": (1500.0, None), "burst": (1000.0, None)}


def generated_splits(cfg, name: str) -> dict[str, list[Source]]:
    """Split cfg.synthetic_sequences generated sources into train/valid/test.

    Membership is a shuffle seeded by cfg.split_seed (the same rule as the file corpora);
    the content of a source depends only on its index (``seed = index``), so changing the
    split seed moves sequences between splits without changing them.
    """
    n = int(cfg.synthetic_sequences)
    if n < 1:
        raise CorpusError(f"data.synthetic_sequences: {n}; the {name} corpus needs at least 1")
    width = max(6, len(str(n - 1)))
    sources = [Source(name=f"{name}/{i:0{width}d}", seed=i) for i in range(n)]
    return split_shuffled(sources, cfg.valid_fraction, cfg.test_fraction, cfg.split_seed)


def find_sources(cfg) -> dict[str, list[Source]]:
    return generated_splits(cfg, NAME)


def read(source: Source, cfg) -> np.ndarray:
    y = synthesize(source.seed, cfg.sample_rate, cfg.synthetic_seconds)
    return y[source.start : source.stop]


# ----------------------------------------------------------------------------- the plan


def _plan(rng: np.random.Generator, total: float) -> list[tuple[str, float, float, dict]]:
    """Segments (kind, start s, duration s, params) until ``total`` seconds are covered."""
    segs = []
    t = rng.uniform(0.05, 0.25)  # leading silence
    while t < total:
        accent = rng.random() < 0.3
        if rng.random() < 0.55:  # syllable onset consonant
            if rng.random() < 0.6:
                dur = rng.uniform(0.06, 0.14)
                kind = str(rng.choice(["s", "sh", "f"], p=[0.45, 0.25, 0.3]))
                segs.append(("fric", t, dur, {"type": kind, "amp": rng.uniform(0.1, 0.3)}))
            else:  # stop: closure silence, then a short broadband burst
                t += rng.uniform(0.03, 0.07)
                dur = rng.uniform(0.01, 0.02)
                segs.append(("fric", t, dur, {"type": "burst", "amp": rng.uniform(0.2, 0.4)}))
            t += dur
        dur = rng.uniform(0.09, 0.26) * (1.3 if accent else 1.0)
        amp = rng.uniform(0.8, 1.0) if accent else rng.uniform(0.4, 0.75)
        segs.append(("vowel", t, dur, {"vowel": int(rng.integers(len(VOWELS))), "amp": amp,
                                       "accent": accent}))  # fmt: skip
        t += dur
        if rng.random() < 0.2:  # coda fricative
            dur = rng.uniform(0.05, 0.12)
            kind = str(rng.choice(["s", "sh", "f"]))
            segs.append(("fric", t, dur, {"type": kind, "amp": rng.uniform(0.08, 0.25)}))
            t += dur
        if rng.random() < 0.3:  # pause between words
            t += rng.uniform(0.06, 0.3)
    return segs


def _add_window(env: np.ndarray, start: int, length: int, ramp: int, amp: float,
                hump: bool = False) -> None:  # fmt: skip
    """Add ``amp`` over env[start:start+length] with raised-cosine ramps at both ends.

    ``hump`` shapes the plateau like a syllable, which swells and fades rather than
    switching on and off.
    """
    stop = min(start + length, len(env))
    if stop <= start:
        return
    pos = np.arange(stop - start) + 0.5
    ramp = max(1, min(ramp, length // 2))
    w = np.minimum(1.0, np.minimum(pos, length - pos) / ramp)
    w = 0.5 - 0.5 * np.cos(np.pi * w)
    if hump:
        w *= 0.6 + 0.4 * np.sin(np.pi * pos / length)
    env[start:stop] += amp * w


# ----------------------------------------------------------------------------- the source


def _pitch(rng, segs, n: int, sr: int, f0_base: float) -> np.ndarray:
    """f0 in Hz per sample: declination, Gaussian accents on stressed vowels, slow wander."""
    hop = sr // 100
    t = np.arange(0, n + hop, hop) / sr
    total = n / sr
    contour = 1.0 - rng.uniform(0.1, 0.25) * t / total  # declination over the utterance
    for kind, start, dur, p in segs:
        if kind == "vowel" and p["accent"]:
            centre = start + dur * rng.uniform(0.3, 0.6)
            contour += rng.uniform(0.12, 0.35) * np.exp(-0.5 * ((t - centre) / 0.08) ** 2)
    # slow wander: white noise smoothed over ~100 ms (a moving average of 10 control points)
    wander = np.convolve(rng.normal(0.0, 1.0, len(t) + 9), np.ones(10) / 10, mode="valid")
    f0 = f0_base * contour * np.exp(0.03 * wander)
    return np.interp(np.arange(n) / sr, t, np.clip(f0, 75.0, 300.0))


def _glottal(rng, f0: np.ndarray, sr: int) -> np.ndarray:
    """Differentiated Rosenberg pulses (glottal flow derivative) with pulsed aspiration."""
    phase = np.cumsum(f0 / sr) + rng.random()
    frac = phase % 1.0
    open_q, close_q = rng.uniform(0.35, 0.45), rng.uniform(0.12, 0.2)  # opening / closing
    flow = np.where(
        frac < open_q,
        0.5 - 0.5 * np.cos(np.pi * frac / open_q),
        np.where(frac < open_q + close_q, np.cos(0.5 * np.pi * (frac - open_q) / close_q), 0.0),
    )
    source = np.diff(flow, prepend=0.0) * (sr / f0)  # per-period derivative, pitch-invariant
    breath = rng.uniform(0.02, 0.08)
    return source + breath * flow * rng.standard_normal(len(f0), dtype=np.float32)


# ----------------------------------------------------------------------------- the filter


def _formant_tracks(rng, segs, sr: int, scale: float):
    """Per-vowel anchor times and (F1..F5, B1..B5) that the tracks interpolate between."""
    times, freqs, bws = [], [], []
    for kind, start, dur, p in segs:
        if kind != "vowel":
            continue
        f123 = VOWELS[p["vowel"]] * scale * rng.uniform(0.94, 1.06, 3)
        f = np.concatenate([f123, [3400 * scale, 4500 * scale]])
        b = np.array([rng.uniform(60, 90), rng.uniform(80, 120), rng.uniform(110, 170), 220, 300])
        # two anchors per vowel so the steady state holds and consonants are the transitions
        for at in (start + 0.3 * dur, start + 0.7 * dur):
            times.append(at)
            freqs.append(f)
            bws.append(b)
    return np.array(times), np.array(freqs), np.array(bws)


def _resonator_cascade(freqs: np.ndarray, bws: np.ndarray, sr: int) -> np.ndarray:
    """Denominators (blocks, 11) of five cascaded 2-pole resonators, one row per block."""
    # a formant too close to Nyquist (F4, F5 at 8 kHz) becomes a pass-through (radius 0)
    r = np.where(freqs < 0.45 * sr, np.exp(-np.pi * bws / sr), 0.0)
    a = np.ones((len(freqs), 1))
    for k in range(freqs.shape[1]):
        pole = np.stack(
            [np.ones(len(r)), -2 * r[:, k] * np.cos(2 * np.pi * freqs[:, k] / sr), r[:, k] ** 2],
            axis=1,
        )
        # polynomial product row by row: a(z) *= pole(z)
        out = np.zeros((len(a), a.shape[1] + 2))
        for j in range(3):
            out[:, j : j + a.shape[1]] += pole[:, j : j + 1] * a
        a = out
    return a


def _vocal_tract(excitation: np.ndarray, segs, rng, sr: int, scale: float) -> np.ndarray:
    """Filter the excitation through time-varying formants by windowed overlap-add."""
    n = len(excitation)
    hop = sr // 100
    tail = 4 * hop  # 40 ms: resonances with >= 60 Hz bandwidth have decayed by ~60 dB
    span = 2 * hop + tail
    n_blocks = -(-n // hop) + 1
    padded = np.zeros((n_blocks + 1) * hop)
    padded[hop : hop + n] = excitation  # block i covers padded[i*hop : i*hop + 2*hop]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(2 * hop) / (2 * hop))  # periodic Hann
    idx = np.arange(n_blocks)[:, None] * hop + np.arange(2 * hop)
    blocks = padded[idx] * window
    active = np.flatnonzero(np.abs(blocks).max(axis=1) > 0)  # skip silent/unvoiced blocks
    out = np.zeros((n_blocks + span // hop) * hop)
    if len(active) == 0:
        return out[hop : hop + n]
    times, freqs, bws = _formant_tracks(rng, segs, sr, scale)
    centres = active * hop / sr  # block centre in the original time axis
    f = np.stack([np.interp(centres, times, freqs[:, k]) for k in range(5)], axis=1)
    b = np.stack([np.interp(centres, times, bws[:, k]) for k in range(5)], axis=1)
    a = _resonator_cascade(f, b, sr)
    gain = a.sum(axis=1, keepdims=True)  # a(1): unity gain at DC, as Klatt's resonators
    x = np.zeros((len(active), span))
    x[:, : 2 * hop] = blocks[active] * gain
    num = np.zeros_like(a)
    num[:, 0] = 1.0  # all-pole: the gain is applied above, so the FIR part is exact
    y = AF.lfilter(
        torch.from_numpy(x), torch.from_numpy(a), torch.from_numpy(num), clamp=False
    ).numpy()
    # overlap-add: the span of each block is span // hop hops long
    y = y.reshape(len(active), span // hop, hop)
    hops = out.reshape(-1, hop)
    for j in range(span // hop):
        hops[active + j] += y[:, j]  # active blocks are distinct, so no index repeats
    return out[hop : hop + n]


def _noise_bands(rng, n: int, sr: int, kinds: list[str]) -> dict[str, np.ndarray]:
    """Each fricative colour present, filtered once over the utterance (gated by envelopes).

    Two identical RBJ-cookbook biquads per colour (band-pass, or high-pass at Q 0.707) make
    one 4th-order filter; all colours run as one batched lfilter call.
    """
    if not kinds:
        return {}
    a, b = [], []
    for kind in kinds:
        centre, q = FRICATIVES[kind]
        w0 = 2 * np.pi * min(centre, 0.42 * sr) / sr
        alpha = np.sin(w0) / (2 * (q or 0.707))
        den = np.array([1 + alpha, -2 * np.cos(w0), 1 - alpha])
        if q is None:
            num = np.array([1, -2, 1]) * (1 + np.cos(w0)) / 2
        else:
            num = np.array([alpha, 0.0, -alpha])
        a.append(np.convolve(den, den))
        b.append(np.convolve(num, num))
    noise = rng.standard_normal((len(kinds), n), dtype=np.float32).astype(np.float64)
    y = AF.lfilter(
        torch.from_numpy(noise), torch.tensor(np.array(a)), torch.tensor(np.array(b)), clamp=False
    ).numpy()
    return {kind: y[i] / y[i].std() for i, kind in enumerate(kinds)}


# ----------------------------------------------------------------------------- the whole


def synthesize(seed: int, sample_rate: int = 16000, seconds: float = 2.0) -> np.ndarray:
    """One utterance: 1-D float32 of round(seconds * sample_rate) samples, peak 0.5."""
    # One torch thread: an utterance is milliseconds of small ops, which multi-threading
    # slows down (ten-fold on a busy machine); parallel preparation workers scale instead.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _synthesize(seed, sample_rate, seconds)
    finally:
        torch.set_num_threads(threads)


def _synthesize(seed: int, sample_rate: int, seconds: float) -> np.ndarray:
    sr = int(sample_rate)
    n = round(seconds * sr)
    if n < 1 or sr < 4000:
        raise ValueError(f"cannot synthesise {seconds} s at {sample_rate} Hz")
    rng = np.random.default_rng([_SALT, int(seed)])
    f0_base = np.exp(rng.uniform(np.log(90.0), np.log(220.0)))
    # shorter vocal tracts go with higher voices: formants scale 0.95 (low) .. 1.2 (high)
    scale = 0.95 + 0.25 * (f0_base - 90.0) / 130.0 + rng.uniform(-0.03, 0.03)
    segs = _plan(rng, seconds)

    voiced_env = np.zeros(n)
    fric_env = {kind: np.zeros(n) for kind in FRICATIVES}
    for kind, start, dur, p in segs:
        i, m = round(start * sr), max(1, round(dur * sr))
        if kind == "vowel":
            _add_window(voiced_env, i, m, round(0.025 * sr), p["amp"], hump=True)
        else:
            _add_window(fric_env[p["type"]], i, m, round(0.012 * sr), p["amp"])

    f0 = _pitch(rng, segs, n, sr, f0_base)
    excitation = _glottal(rng, f0, sr) * voiced_env
    voiced = _vocal_tract(excitation, segs, rng, sr, scale)
    voiced /= max(np.abs(voiced).max(), 1e-12)  # fricative levels are relative to the vowels
    bands = _noise_bands(rng, n, sr, [k for k in FRICATIVES if fric_env[k].any()])
    fric = sum((fric_env[k] * band for k, band in bands.items()), np.zeros(n))
    # a recording's noise floor (-60 dB): silence is never exactly zero
    floor = 1e-3 * rng.standard_normal(n, dtype=np.float32)
    y = voiced + 0.25 * fric + floor
    fade = np.zeros(n)
    _add_window(fade, 0, n, round(0.005 * sr), 1.0)
    y *= fade  # no click at either end
    return (0.5 * y / np.abs(y).max()).astype(np.float32)
