"""Synthetic handwriting: the embedded demo pen-trajectory corpus, generated on the fly.

Hollerbach's oscillation theory of handwriting (Biol. Cybern. 39, 1981): cursive script
is two coupled oscillators plus a steady rightward drift,

    x(t) = A_x sin(w t + phi) + c t,        y(t) = A_y sin(w t),

and letters come from slowly modulating the amplitudes, the relative phase phi and the
frequency from one cycle ("letter") to the next: phi near 90 degrees with A_x w > c draws
loops (e, l), smaller A_x gives cusps and arcades (i, n, m), a larger up- or down-stroke
amplitude gives ascenders and descenders. A per-writer slant shears x by y.

A line is a few words, each one pen-down stroke (sometimes broken by a pen lift), some
followed by a short diacritic stroke (an i-dot or a t-bar) written after the word, as
people do. Points are sampled at 100 Hz like a pen tablet, in units where the body of a
letter (the x-height) is about 1; the pipeline normalises the offsets.

``read`` returns (T, 3) float32 steps (pen, dx, dy) in the IAM-OnDB convention: pen = 1 on
the last point of each stroke (the pen is lifted after it), (dx, dy) the offset from the
previous point, the first point dropped; y points up. Every line is a pure function of
its seed (numpy PCG64 streams, no threads), so it is bit-identical across processes.
"""

from __future__ import annotations

import numpy as np

from vrnn_lightning.data.corpora.synthetic_speech import generated_splits
from vrnn_lightning.data.source import Source
from vrnn_lightning.data.strokes import points_to_steps

OBSERVATION = "strokes"
NAME = "synthetic_handwriting"
RATE = 100.0  # points per second, a typical pen-tablet rate
_SALT = 0x4A4D  # keeps this corpus's random streams apart from other generated corpora


def find_sources(cfg) -> dict[str, list[Source]]:
    return generated_splits(cfg, NAME)


def read(source: Source, cfg) -> np.ndarray:
    # a line's length is its own (a few hundred steps); data.synthetic_seconds is for audio
    return synthesize(source.seed)[source.start : source.stop]


def _word(rng, writer: dict, letters: int) -> np.ndarray:
    """One word's pen-down trajectory (N, 2), starting at x = 0 on the line's midline."""
    # per-letter parameters, interpolated between letter centres so they vary slowly
    up = np.where(rng.random(letters) < 0.18, rng.uniform(1.8, 2.6, letters), 1.0)
    down = np.where(rng.random(letters) < 0.1, rng.uniform(1.8, 2.4, letters), 1.0)
    up = up * rng.uniform(0.85, 1.1, letters)
    down = down * rng.uniform(0.85, 1.1, letters)
    # letter shapes: loops (e, l), narrow cusps (i, u) and reversed loops/arcades (o, a, n)
    shape = rng.choice(3, letters, p=[0.45, 0.35, 0.2])
    a_x = np.choose(shape, [rng.uniform(0.25, 0.5, letters), rng.uniform(0.04, 0.15, letters),
                            rng.uniform(0.2, 0.35, letters)]) * writer["loopiness"]  # fmt: skip
    phi = np.choose(shape, [0.5, 0.5, -0.5]) * np.pi + rng.uniform(-0.5, 0.5, letters)
    freq = writer["freq"] * rng.uniform(0.85, 1.15, letters)

    # the oscillator's phase advances by 2 pi per letter, at the local letter frequency
    knots = np.arange(letters) + 0.5
    steps, u = [], 0.0
    while u < letters:
        steps.append(u)
        u += np.interp(u, knots, freq) / RATE
    u = np.array(steps)  # position in letters (cycles) of each sample
    theta = 2 * np.pi * u - 0.5 * np.pi  # start at the bottom of a down-stroke

    def at(p: np.ndarray) -> np.ndarray:
        return np.interp(u, knots, p)

    s = np.sin(theta)
    a_up, a_down = at(up), at(down)
    # the amplitude blends smoothly between the up- and down-stroke: A(s) at s = +1 is
    # a_up, at s = -1 a_down, so tall and descending letters stay smooth curves
    y = 0.5 * writer["height"] * ((a_up + a_down) * 0.5 * s + (a_up - a_down) * 0.5 * s * s)
    x = at(a_x) * writer["height"] * np.sin(theta + at(phi)) + writer["drift"] * u
    x = x + writer["slant"] * y
    return np.stack([x - x[0], y], axis=1)


def _diacritic(rng, word: np.ndarray, height: float) -> np.ndarray:
    """An i-dot or a t-bar above a random point of the word, written after the word."""
    anchor = word[rng.integers(len(word) // 4, len(word) - len(word) // 4 + 1)]
    top = anchor[1] + height * rng.uniform(0.9, 1.4)
    if rng.random() < 0.5:  # dot: a tiny tick of a few points
        n = int(rng.integers(3, 6))
        t = np.linspace(0.0, 1.0, n)
        return np.stack([anchor[0] + 0.06 * height * t, top + 0.04 * height * t], axis=1)
    n = int(rng.integers(8, 15))  # bar: a slightly rising horizontal line
    t = np.linspace(-0.5, 0.5, n)
    t = 0.5 * np.sin(np.pi * t)  # the pen accelerates and decelerates
    return np.stack([anchor[0] + 0.7 * height * t, top + 0.1 * height * t], axis=1)


def synthesize(seed: int) -> np.ndarray:
    """One line of handwriting as (T, 3) float32 steps (pen, dx, dy)."""
    rng = np.random.default_rng([_SALT, int(seed)])
    writer = {
        "height": rng.uniform(0.8, 1.2),
        "freq": rng.uniform(3.5, 5.5),  # letters per second
        "drift": rng.uniform(0.55, 0.8),  # rightward advance per letter, in x-heights
        "slant": rng.uniform(-0.05, 0.45),
        "loopiness": rng.uniform(0.8, 1.2),
    }
    target = rng.integers(300, 650)  # points in the line
    strokes, x0, n_points = [], 0.0, 0
    tilt = rng.uniform(-0.03, 0.03)  # the line's baseline is never quite horizontal
    while n_points < target:
        word = _word(rng, writer, int(rng.integers(2, 8)))
        word[:, 0] += x0
        word[:, 1] += tilt * word[:, 0] + rng.normal(0.0, 0.05)
        pieces = [word]
        if len(word) > 40 and rng.random() < 0.2:  # lift the pen once inside the word
            cut = int(rng.integers(15, len(word) - 15))
            pieces = [word[:cut], word[cut:] + [0.05 * writer["height"], 0.0]]
        if rng.random() < 0.35:
            pieces.append(_diacritic(rng, word, writer["height"]))
        strokes.extend(pieces)
        n_points += sum(len(p) for p in pieces)
        x0 = word[-1, 0] + writer["height"] * rng.uniform(0.6, 1.3)  # the gap between words

    points = np.zeros((sum(len(s) for s in strokes), 3))
    points[:, :2] = np.concatenate(strokes)
    points[np.cumsum([len(s) for s in strokes]) - 1, 2] = 1.0  # lifted after a stroke's end
    return points_to_steps(points)
