"""Plots: PNGs written, time axes in seconds, pen-up jumps not drawn, no pyplot state."""

from __future__ import annotations

import matplotlib.image as mpimg
import matplotlib.pyplot as plt
import numpy as np
import pytest

from vrnn_lightning.plots import (
    plot_kl_over_strokes,
    plot_kl_over_waveform,
    plot_strokes,
    plot_waveforms,
)


def _png_shape(path):
    return mpimg.imread(str(path)).shape


def test_waveforms_one_panel_each_time_in_seconds(tmp_path):
    rate = 8000
    waves = np.sin(np.linspace(0, 200, 2 * rate))[None].repeat(3, 0) * [[0.1], [0.5], [1.0]]
    fig = plot_waveforms(waves, rate, tmp_path / "w.png", title="three", mark_seconds=0.5)
    assert len(fig.axes) == 3
    assert fig.axes[-1].get_xlim() == pytest.approx((0.0, 2.0))  # 16000 samples at 8 kHz
    line = fig.axes[0].get_lines()[0]
    assert line.get_xdata()[-1] == pytest.approx((2 * rate - 1) / rate)
    # a common amplitude scale: the quiet panel is drawn small, not stretched
    assert fig.axes[0].get_ylim() == fig.axes[2].get_ylim()
    height, width, _ = _png_shape(tmp_path / "w.png")
    assert width > 600 and height > 300
    assert plt.get_fignums() == []  # nothing left in pyplot's global state


def test_waveforms_single_array_and_errors(tmp_path):
    fig = plot_waveforms(np.zeros(100), 100, tmp_path / "one.png")
    assert len(fig.axes) == 1 and (tmp_path / "one.png").is_file()
    with pytest.raises(ValueError, match="no waveforms"):
        plot_waveforms([], 100, tmp_path / "none.png")


def test_strokes_draw_strokes_not_pen_up_jumps(tmp_path):
    # two strokes: right 3 steps (pen lifted after the 3rd), a jump, then up 2 steps
    steps = np.array(
        [[0, 1, 0], [0, 1, 0], [1, 1, 0], [0, 5, 5], [0, 0, 1], [1, 0, 1]], dtype=np.float32
    )
    fig = plot_strokes([steps, steps], tmp_path / "s.png", title="two lines")
    assert len(fig.axes) == 2
    lines = fig.axes[0].get_lines()
    assert len(lines) == 2
    np.testing.assert_allclose(lines[0].get_xydata(), [[0, 0], [1, 0], [2, 0], [3, 0]])
    # the second stroke starts where the pen lands (8, 5), not at the lift point (3, 0)
    np.testing.assert_allclose(lines[1].get_xydata(), [[8, 5], [8, 6], [8, 7]])
    assert fig.axes[0].get_aspect() == 1.0
    assert _png_shape(tmp_path / "s.png")[1] > 600
    assert plt.get_fignums() == []


def test_kl_over_waveform_shares_the_time_axis(tmp_path):
    rate, frame = 16000, 200
    kl = np.r_[np.zeros(10), np.full(10, 3.0)]
    wave = np.r_[np.zeros(10 * frame), np.sin(np.arange(10 * frame) / 5)]
    fig = plot_kl_over_waveform(wave, kl, frame, rate, tmp_path / "kl.png")
    top, bottom = fig.axes
    assert bottom.get_xlim() == pytest.approx((0.0, 20 * frame / rate))
    assert top.get_xlim() == bottom.get_xlim()
    assert bottom.get_ylim()[1] >= 3.0
    assert (tmp_path / "kl.png").is_file()
    with pytest.raises(ValueError, match="20 frames of 200 samples"):
        plot_kl_over_waveform(wave[:100], kl, frame, rate, tmp_path / "short.png")


def test_kl_over_strokes_colours_steps_and_pen_downs(tmp_path):
    steps = np.array(
        [[0, 1, 0], [0, 1, 0], [1, 1, 0], [0, 5, 5], [0, 0, 1], [1, 0, 1]], dtype=np.float32
    )
    kl = np.array([0.1, 0.2, 0.3, 4.0, 0.5, 0.6])
    fig = plot_kl_over_strokes(steps, kl, tmp_path / "kls.png")
    strokes_ax = fig.axes[0]
    lines, dots = strokes_ax.collections
    # steps 0, 1, 2, 4, 5 are drawn; step 3 follows a pen lift: a dot where the pen lands
    np.testing.assert_allclose(lines.get_array(), [0.1, 0.2, 0.3, 0.5, 0.6])
    np.testing.assert_allclose(dots.get_offsets(), [[8, 5]])
    np.testing.assert_allclose(dots.get_array(), [4.0])
    assert lines.get_clim() == dots.get_clim() == (0.0, 4.0)
    assert (tmp_path / "kls.png").is_file()
    with pytest.raises(ValueError, match="6 steps but 5 KL values"):
        plot_kl_over_strokes(steps, kl[:5], tmp_path / "bad.png")
