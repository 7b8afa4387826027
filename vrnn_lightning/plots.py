"""PNG plots of what the model generates and of where it uses its latent variables.

Figures are built on ``matplotlib.figure.Figure`` with the Agg canvas directly, never through
pyplot: no global figure state, no GUI backend, safe in training callbacks and worker threads.
Every function saves a PNG at ``path`` and returns the Figure (for tests, or more saving).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from .data.strokes import split_strokes, steps_to_points

DPI = 110


def _save(fig: Figure, path: str | Path) -> Figure:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)  # attaches the Agg canvas to the figure
    fig.savefig(path, dpi=DPI)
    return fig


def _as_list(arrays) -> list[np.ndarray]:
    """One array -> [it]; a batch (N, ...) or a list -> a list of numpy arrays."""
    if hasattr(arrays, "detach"):
        arrays = arrays.detach().cpu().numpy()
    if isinstance(arrays, np.ndarray):
        return [arrays] if arrays.ndim == 1 else list(arrays)
    return [np.asarray(a.detach().cpu() if hasattr(a, "detach") else a) for a in arrays]


def plot_waveforms(
    waveforms,
    sample_rate: int,
    path: str | Path,
    title: str | None = None,
    labels: Sequence[str] | None = None,
    mark_seconds: float | None = None,
) -> Figure:
    """One panel per waveform (a 1-D array, or a list / (N, S) batch of them), time in seconds.

    ``mark_seconds`` draws a dashed line at that time in every panel (e.g. the end of a primer).
    """
    waves = [np.asarray(w, dtype=np.float64).reshape(-1) for w in _as_list(waveforms)]
    if not waves:
        raise ValueError("plot_waveforms: no waveforms to plot")
    fig = Figure(figsize=(10, 1.6 * len(waves) + 0.6), layout="constrained")
    axes = fig.subplots(len(waves), 1, sharex=True, squeeze=False)[:, 0]
    peak = max(1e-6, max(float(np.abs(w).max()) if w.size else 0.0 for w in waves))
    for i, (ax, w) in enumerate(zip(axes, waves, strict=True)):
        ax.plot(np.arange(len(w)) / sample_rate, w, lw=0.5, color="tab:blue")
        ax.set_ylim(-1.05 * peak, 1.05 * peak)  # a common scale: loudness compares across panels
        ax.set_ylabel(labels[i] if labels else f"#{i}", rotation=0, ha="right", va="center")
        ax.grid(alpha=0.3)
        if mark_seconds is not None:
            ax.axvline(mark_seconds, color="tab:red", ls="--", lw=1)
    axes[-1].set_xlabel("time (s)")
    axes[-1].set_xlim(0, max(len(w) for w in waves) / sample_rate)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_strokes(
    steps,
    path: str | Path,
    title: str | None = None,
    labels: Sequence[str] | None = None,
) -> Figure:
    """Handwriting from (pen, dx, dy) steps: one (T, 3) array, or a list / batch of them.

    Steps are integrated back to absolute points; each stroke is a line, and the pen-up jumps
    between strokes are not drawn. Equal aspect, so the letters keep their shape.
    """
    sequences = [np.asarray(s, dtype=np.float64) for s in _as_list(steps)]
    if not sequences:
        raise ValueError("plot_strokes: no sequences to plot")
    fig = Figure(figsize=(10, 1.8 * len(sequences) + 0.6), layout="constrained")
    axes = fig.subplots(len(sequences), 1, squeeze=False)[:, 0]
    for i, (ax, seq) in enumerate(zip(axes, sequences, strict=True)):
        for stroke in split_strokes(steps_to_points(seq)):
            ax.plot(stroke[:, 0], stroke[:, 1], color="black", lw=1.2, solid_capstyle="round")
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_xticks([])
        ax.set_yticks([])
        for side in ax.spines.values():
            side.set_visible(False)
        ax.set_title(labels[i] if labels else f"#{i}", loc="left", fontsize=9)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_kl_over_waveform(
    waveform,
    kl_per_step,
    frame_size: int,
    sample_rate: int,
    path: str | Path,
    title: str | None = None,
) -> Figure:
    """The paper's Figure 2: a waveform, and under it the KL(q || p) of each frame on the same
    time axis (the KL jumps where the waveform changes: the model uses z there)."""
    wave = np.asarray(waveform, dtype=np.float64).reshape(-1)
    kl = np.asarray(kl_per_step, dtype=np.float64).reshape(-1)
    if len(wave) < len(kl) * frame_size:
        raise ValueError(
            f"plot_kl_over_waveform: {len(kl)} frames of {frame_size} samples need "
            f"{len(kl) * frame_size} samples, the waveform has {len(wave)}"
        )
    wave = wave[: len(kl) * frame_size]
    edges = np.arange(len(kl) + 1) * frame_size / sample_rate  # frame boundaries in seconds
    fig = Figure(figsize=(10, 4.2), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    top.plot(np.arange(len(wave)) / sample_rate, wave, lw=0.5, color="tab:blue")
    top.set_ylabel("amplitude")
    top.grid(alpha=0.3)
    bottom.stairs(kl, edges, fill=True, color="tab:red", alpha=0.35)
    bottom.stairs(kl, edges, color="tab:red", lw=1)
    bottom.set_ylabel("KL (nats)")
    bottom.set_xlabel("time (s)")
    bottom.set_xlim(edges[0], edges[-1])
    bottom.set_ylim(bottom=0)
    bottom.grid(alpha=0.3)
    top.set_title(title or "waveform and per-frame KL(q(z_t) || p(z_t))")
    return _save(fig, path)


def plot_kl_over_strokes(
    steps,
    kl_per_step,
    path: str | Path,
    title: str | None = None,
) -> Figure:
    """Figure 2 for handwriting: the line with each pen step coloured by its KL(q || p), and
    the KL of each step below it. Pen-up jumps are not drawn; their KL colours a dot where
    the pen lands."""
    steps = np.asarray(steps, dtype=np.float64)
    kl = np.asarray(kl_per_step, dtype=np.float64).reshape(-1)
    if len(kl) != len(steps):
        raise ValueError(f"plot_kl_over_strokes: {len(steps)} steps but {len(kl)} KL values")
    points = steps_to_points(steps)
    # step t draws the segment from point t to point t + 1, unless the pen was lifted at t
    segments = np.stack([points[:-1, :2], points[1:, :2]], axis=1)
    drawn = points[:-1, 2] < 0.5
    fig = Figure(figsize=(10, 4.2), layout="constrained")
    top, bottom = fig.subplots(2, 1, height_ratios=(3, 2))
    # turbo: both ends stay visible on white; one colour scale for segments and pen-downs
    clim = (0.0, max(1e-9, float(kl.max())))
    lines = LineCollection(segments[drawn], cmap="turbo", linewidths=1.6)
    lines.set_array(kl[drawn])
    lines.set_clim(*clim)
    top.add_collection(lines)
    # a pen-up step is not drawn, but its KL is often the largest: a dot where the pen lands
    jumps = ~drawn
    top.scatter(
        *points[1:][jumps, :2].T,
        c=kl[jumps],
        cmap="turbo",
        vmin=clim[0],
        vmax=clim[1],
        s=22,
        zorder=3,
        edgecolors="none",
    )
    top.autoscale()
    top.set_aspect("equal", adjustable="datalim")
    top.set_xticks([])
    top.set_yticks([])
    fig.colorbar(lines, ax=top, label="KL (nats)", shrink=0.8)
    bottom.stairs(kl, np.arange(len(kl) + 1), fill=True, color="tab:red", alpha=0.35)
    bottom.stairs(kl, np.arange(len(kl) + 1), color="tab:red", lw=1)
    bottom.set_xlim(0, len(kl))
    bottom.set_ylim(bottom=0)
    bottom.set_xlabel("pen step")
    bottom.set_ylabel("KL (nats)")
    bottom.grid(alpha=0.3)
    top.set_title(title or "handwriting coloured by per-step KL(q(z_t) || p(z_t))")
    return _save(fig, path)


def _smooth(values: np.ndarray, weight: float = 0.9) -> np.ndarray:
    """Exponential moving average, bias-corrected (as TensorBoard's smoothing)."""
    out, acc = np.empty(len(values)), 0.0
    for i, v in enumerate(values):
        acc = weight * acc + (1 - weight) * v
        out[i] = acc / (1 - weight ** (i + 1))
    return out


def plot_learning_curves(run_dir: str | Path, path: str | Path) -> Figure | None:
    """The run's ELBO (train smoothed, validation) and KL against the step, from the CSV
    logs in ``run_dir``; None (and no file) when nothing was logged yet."""
    from .metrics_csv import metric_history

    curves = {
        name: metric_history(run_dir, name)
        for name in ("train/elbo", "val/elbo", "train/kl", "val/kl")
    }
    if not any(curves.values()):
        return None
    fig = Figure(figsize=(9, 3.6))
    ax_elbo, ax_kl = fig.subplots(1, 2)
    for ax, metric in ((ax_elbo, "elbo"), (ax_kl, "kl")):
        train, val = curves[f"train/{metric}"], curves[f"val/{metric}"]
        if train:
            steps = [h["_step"] for h in train]
            values = np.array([h[f"train/{metric}"] for h in train])
            ax.plot(steps, values, color="tab:blue", alpha=0.25, lw=0.8)
            ax.plot(steps, _smooth(values), color="tab:blue", label="train (smoothed)")
        if val:
            ax.plot(
                [h["_step"] for h in val],
                [h[f"val/{metric}"] for h in val],
                "o-",
                color="tab:orange",
                label="validation",
            )
        ax.set_xlabel("step")
        ax.set_ylabel(f"{'ELBO' if metric == 'elbo' else 'KL'} per sequence (nats)")
        ax.grid(alpha=0.3)
        if train or val:
            ax.legend(fontsize=8)
    fig.suptitle(f"{Path(run_dir).name}: learning curves")
    fig.tight_layout()
    return _save(fig, path)
