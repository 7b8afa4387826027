"""vrnn-export's folder: the weights as safetensors (no code runs when loading them), the
description as config.json (checkpoint_format.py) and a model card (README.md)."""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import OmegaConf

from .checkpoint import Trained
from .checkpoint_format import EXPORT_CARD, EXPORT_CONFIG, EXPORT_WEIGHTS, FORMAT_VERSION
from .version import __version__


def export(trained: Trained, folder: str | Path, evaluations: list[dict] | None = None) -> Path:
    """Write ``folder``: the weights as safetensors (no code, no optimiser state), the
    description as config.json and a model card (README.md). Returns the folder."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    weights = {k: v.detach().cpu().contiguous() for k, v in trained.model.state_dict().items()}
    save_file(weights, folder / EXPORT_WEIGHTS, metadata={"format": "vrnn_lightning"})
    description = {
        "format_version": FORMAT_VERSION,
        "config": OmegaConf.to_container(trained.config, resolve=True),
        "data": trained.data.as_dict(),
        "metrics": trained.metrics,
        "step": trained.step,
        "command": trained.command,
        "version": __version__,
        "evaluations": evaluations or [],
    }
    (folder / EXPORT_CONFIG).write_text(json.dumps(description, indent=2) + "\n")
    (folder / EXPORT_CARD).write_text(model_card(trained, folder, evaluations or []))
    return folder


def model_card(trained: Trained, folder: Path, evaluations: list[dict]) -> str:

    cfg, data = trained.config, trained.data
    n_params = sum(p.numel() for p in trained.model.parameters())
    norm = data.normalisation
    what = (
        f"{data.sample_rate} Hz audio in frames of {data.frame_size} samples"
        if data.observation == "audio"
        else "pen trajectories, one step (pen, dx, dy) per x_t"
    )
    lines = [
        f"# {cfg.model.variant} on {data.dataset}",
        "",
        "A Variational RNN (Chung et al., NeurIPS 2015), exported by vrnn-lightning "
        f"{__version__}.",
        "",
        "## What it was trained on",
        "",
        f"- corpus: `{data.dataset}`"
        + (f" (data.root `{cfg.data.root}`)" if cfg.data.root else ""),
        f"- x_t: {what}; x_dim {data.x_dim}",
        f"- training store fingerprint: `{data.fingerprint}`",
    ]
    if norm is not None:
        lines.append(
            f"- normalisation: mean {norm.mean:.6g}, std {norm.std:.6g} (stored units; "
            f"amplitude scale {norm.amplitude_scale:g})"
        )
    lines += [
        "",
        "## Model",
        "",
        f"- variant `{cfg.model.variant}`, {n_params:,} parameters; h_dim {cfg.model.h_dim}, "
        f"z_dim {cfg.model.z_dim}, hidden layers per MLP {cfg.model.mlp_layers}"
        + (f", {cfg.model.n_components} mixture components" if "gmm" in cfg.model.variant else "")
        + (f", res_q {cfg.model.res_q}" if cfg.model.variant.startswith("srnn") else "")
        + f"; output head {cfg.model.output}",
        f"- trained for {trained.step} steps",
        "",
        "## Figures (nats; log-likelihood per sequence, higher is better)",
        "",
    ]
    if trained.metrics:
        lines += [
            f"- {k}: {v:.4f}" for k, v in sorted(trained.metrics.items()) if k.startswith("val/")
        ]
    for ev in evaluations:
        k = ev.get("iw_samples")
        lines.append(
            f"- {ev.get('split')} split ({ev.get('n_sequences')} sequences): ELBO "
            f"{ev['elbo']['per_sequence']:.2f}, IWAE(K={k}) {ev['iwae']['per_sequence']:.2f}, "
            f"the paper's estimate (K={k}) {ev['paper_estimate']['per_sequence']:.2f}"
        )
    if not any(k.startswith("val/") for k in trained.metrics) and not evaluations:
        lines.append("- none recorded")
    lines += [
        "",
        "## How it was made",
        "",
        "```",
        trained.command or "(the command line was not recorded)",
        "```",
        "",
        "## How to use it",
        "",
        "```",
        f"vrnn-sample --ckpt {folder} --out samples/",
        f"vrnn-eval --ckpt {folder} --inputs my_recording.wav"
        if data.observation == "audio"
        else f"vrnn-eval --ckpt {folder} --inputs my_strokes/",
        "```",
        "",
        "```python",
        "import vrnn_lightning",
        f'trained = vrnn_lightning.load_pretrained("{folder}")',
        "trained.model            # a torch.nn.Module (vrnn_lightning.model.VRNN), eval mode",
        "x = trained.normalise(frames)   # frames as the readers return them",
        "```",
        "",
        f"Files: `{EXPORT_WEIGHTS}` (weights, safetensors: no code runs when loading it), "
        f"`{EXPORT_CONFIG}` (the run config, what x_t is, the normalisation, the metrics).",
        "",
    ]
    return "\n".join(lines)
