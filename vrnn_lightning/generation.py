"""Generate from a model and save what it made: shared by vrnn-sample and the SampleCallback.

Audio: WAV files of the de-normalised decoder means (``*_mean.wav``, what the paper saved as
audio; peak-normalised by default, since a mean is far quieter than speech: the gain is in
``samples.json`` and in the WAV's comment) and of the sampled frames that were fed back
(``*_sampled.wav``, at their own level), at the dataset's sample rate, plus a waveform PNG.
Handwriting: a PNG of the sampled strokes. Both: the de-normalised arrays as .npy files.
For the VRNN variants also the paper's Figure 2: a validation waveform with the KL of each
frame under it (handwriting: a validation line coloured by the KL of each pen step).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .config import ConfigError
from .data.audio import write_wav
from .figure_worker import draw_here
from .model import VRNN
from .paths import check_creatable

# the Figure 2 plot scores at most this many steps of the validation sequence (a long
# utterance would make an unreadable plot and a slow forward pass)
KL_PLOT_MAX_STEPS = 1000
# peak level of a peak-normalised decoder mean: -1 dBFS
MEAN_PEAK = 10 ** (-1 / 20)


@dataclass
class Generated:
    """What ``generate_and_save`` wrote: (path, caption) pairs, for W&B and for the user."""

    folder: Path
    audio: list[tuple[Path, str]] = field(default_factory=list)
    images: list[tuple[Path, str]] = field(default_factory=list)
    arrays: list[Path] = field(default_factory=list)
    sample_rate: int | None = None


def primer_from(datamodule, split: str, index: int, steps: int) -> torch.Tensor:
    """The first ``steps`` steps of sequence ``index`` of ``split``, (1, Tp, D) normalised."""
    n = len(datamodule.store(split))
    if not 0 <= index < n:
        raise ConfigError(
            f"sample.primer_index: {index} is not a sequence of the {split} split (it has {n})"
        )
    seq = datamodule.sequence(split, index)
    if len(seq) < steps:
        raise ConfigError(
            f"sample.primer_steps: {steps} steps, but sequence {index} of the {split} split has "
            f"only {len(seq)}"
        )
    return seq[:steps].unsqueeze(0)


@torch.no_grad()
def kl_per_step(model: VRNN, x: torch.Tensor) -> np.ndarray:
    """KL(q(z_t | x_<=t, z_<t) || p(z_t | x_<t, z_<t)) of each step of one sequence x (T, D)."""
    device = next(model.parameters()).device
    terms = model(x.unsqueeze(0).to(device).float())
    return terms.kl[0].cpu().numpy()


@torch.no_grad()
def generate_and_save(
    model: VRNN,
    datamodule,
    folder: str | Path,
    n: int,
    steps: int,
    primer_steps: int = 0,
    primer_index: int = 0,
    seed: int | None = None,
    kl_plot: bool = True,
    title: str = "",
    data=None,
    peak_normalise: bool = True,
    draw=draw_here,
) -> Generated:
    """Sample ``n`` sequences of ``steps`` steps (after a primer of ``primer_steps`` steps of
    validation sequence ``primer_index`` when > 0) and save them under ``folder``.

    ``data`` says what x_t is and denormalises (a FramesDataModule or a trained model's
    checkpoint_format.DataDescription; default: ``datamodule``). ``datamodule`` may be None when the
    training data is not at hand: no primer then, and no KL figure.
    The model runs in eval mode without gradients and is put back as it was. With ``seed``
    the draws come from a forked RNG: reproducible, and the caller's random stream (e.g. the
    training run's) is left untouched. ``draw(name, *args, **kwargs)`` draws the figure
    ``plots.<name>``: here by default, in a helper process during training
    (``figure_worker.FigureWorker``).
    """
    if n < 1 or steps < 1:
        raise ConfigError(f"sample.n and sample.steps must be >= 1, got n={n}, steps={steps}")
    data = datamodule if data is None else data
    if primer_steps > 0 and datamodule is None:
        raise ConfigError(
            "sample.primer_steps: a primer is a validation sequence, and the training data "
            "(data.root / data.cache_dir) is not available"
        )
    kl_plot = kl_plot and datamodule is not None
    folder = check_creatable(folder, "--out", folder=True)  # made once there is something
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    fork_devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=fork_devices, enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(seed)
            primer = None
            if primer_steps > 0:
                primer = primer_from(datamodule, "valid", primer_index, primer_steps)
            samples, means = model.generate(n, steps, primer)
            kl_x = kl = None
            if kl_plot and model.latent:
                kl_x = datamodule.sequence("valid", 0)[:KL_PLOT_MAX_STEPS]
                kl = kl_per_step(model, kl_x)
    finally:
        model.train(was_training)

    folder.mkdir(parents=True, exist_ok=True)
    out = Generated(folder=folder)
    samples = data.denormalise(samples.float().cpu().numpy())
    means = data.denormalise(means.float().cpu().numpy())
    np.save(folder / "samples.npy", samples)
    np.save(folder / "means.npy", means)
    out.arrays = [folder / "samples.npy", folder / "means.npy"]
    what = f"continuing valid #{primer_index}" if primer_steps > 0 else "unconditional"
    heading = f"{title}: {n} samples, {what}" if title else f"{n} samples, {what}"

    if data.observation == "audio":
        rate = data.sample_rate
        out.sample_rate = rate
        primer_seconds = primer_steps * data.frame_size / rate if primer_steps else None
        waves_mean = means.reshape(n, -1)  # frames back to one waveform per sample
        waves_sampled = samples.reshape(n, -1)
        files = {}
        for i in range(n):
            peak = float(np.abs(waves_mean[i]).max())
            gain = MEAN_PEAK / peak if peak_normalise and peak > 0 else 1.0
            note = f"decoder mean x {gain:.4g} (peak-normalised)" if gain != 1.0 else "raw level"
            path = write_wav(
                folder / f"sample_{i:02d}_mean.wav", waves_mean[i] * gain, rate, comment=note
            )
            files[path.name] = {"what": "decoder mean", "gain": gain, "raw_peak": peak}
            out.audio.append((path, f"sample {i} (decoder mean, {note})"))
            path = write_wav(folder / f"sample_{i:02d}_sampled.wav", waves_sampled[i], rate)
            files[path.name] = {"what": "sampled frames (fed back)", "gain": 1.0}
            out.audio.append((path, f"sample {i} (sampled frames)"))
        (folder / "samples.json").write_text(json.dumps(files, indent=2) + "\n")
        path = folder / "waveforms.png"
        primer_note = "; dashed: end of primer" if primer_steps else ""
        draw(
            "plot_waveforms",
            waves_mean,
            rate,
            path,
            title=f"{heading} (decoder means{primer_note})",
            mark_seconds=primer_seconds,
        )
        out.images.append((path, "decoder means"))
        if kl is not None:
            wave = data.denormalise(kl_x.numpy()).reshape(-1)
            path = folder / "kl_valid_00.png"
            draw(
                "plot_kl_over_waveform",
                wave,
                kl,
                data.frame_size,
                rate,
                path,
                title=f"{title} valid #0: waveform and per-frame KL".strip(),
            )
            out.images.append((path, "valid #0: per-frame KL"))
    else:
        path = folder / "strokes.png"
        draw("plot_strokes", list(samples), path, title=heading)
        out.images.append((path, "sampled strokes"))
        if kl is not None:
            path = folder / "kl_valid_00.png"
            draw(
                "plot_kl_over_strokes",
                data.denormalise(kl_x.numpy()),
                kl,
                path,
                title=f"{title} valid #0: strokes coloured by per-step KL".strip(),
            )
            out.images.append((path, "valid #0: per-step KL"))
    return out
