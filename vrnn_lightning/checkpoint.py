"""A trained model on its own: the model a checkpoint or an export folder describes
(checkpoint_format.py), built and loaded with its weights; the data it was trained on, the
device to run it on, the run folder it belongs to."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from .checkpoint_format import (  # noqa: F401  (DESCRIPTION_KEY: the entry's name, for callers)
    DESCRIPTION_KEY,
    EXPORT_CONFIG,
    EXPORT_WEIGHTS,
    DataDescription,
    legacy_description,
    read_checkpoint,
)
from .config import Config, ConfigError, apply_overrides, merge_checked
from .data.datamodule import FramesDataModule
from .data.source import CorpusError
from .data.store import SPLITS, is_finished
from .family import model_from_config
from .model import VRNN


@dataclass
class Trained:
    """A ready model (on the CPU, in eval mode) and everything known about how it was made."""

    model: VRNN
    config: DictConfig  # the run config it was trained with
    data: DataDescription
    metrics: dict = field(default_factory=dict)  # e.g. {"val/elbo": -2176.3}
    step: int | None = None
    path: Path | None = None  # the checkpoint file or export folder it came from
    command: str | None = None  # the vrnn-fit command line that trained it

    def normalise(self, frames):
        return self.data.normalisation.normalise(frames)

    def denormalise(self, x):
        return self.data.normalisation.denormalise(x)


def _build(description: dict, weights: dict[str, torch.Tensor], source: Path) -> Trained:
    cfg = merge_checked(
        OmegaConf.structured(Config), description["config"], f"the config saved in {source}"
    )
    data = DataDescription.from_dict(description["data"])
    model = model_from_config(cfg.model, data.observation, data.x_dim)
    try:
        model.load_state_dict(weights)
    except RuntimeError as err:
        raise ConfigError(
            f"{source}: the weights do not fit the saved model config ({err})"
        ) from None
    return Trained(
        model=model.eval(),
        config=cfg,
        data=data,
        metrics=dict(description.get("metrics") or {}),
        step=description.get("step"),
        path=source,
        command=description.get("command"),
    )


def load_trained(path: str | Path) -> Trained:
    """The model in a vrnn-fit checkpoint or a vrnn-export folder, on the CPU in eval mode."""
    path = Path(path)
    if path.is_dir() and (path / EXPORT_CONFIG).is_file():
        return load_export(path)
    ckpt = read_checkpoint(path)
    description = ckpt.get(DESCRIPTION_KEY) or legacy_description(ckpt)
    prefix = "model."
    weights = {k[len(prefix) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    return _build(description, weights, path)


def load_export(folder: str | Path) -> Trained:
    """A folder written by vrnn-export: config.json and model.safetensors."""
    from safetensors.torch import load_file

    folder = Path(folder)
    config, weights = folder / EXPORT_CONFIG, folder / EXPORT_WEIGHTS
    try:
        description = json.loads(config.read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(f"{config}: not a vrnn-export config ({err})") from None
    if not isinstance(description, dict) or "config" not in description:
        raise ConfigError(f"{config}: not a vrnn-export config (no 'config' entry)")
    if not weights.is_file():
        raise ConfigError(f"{folder}: no {EXPORT_WEIGHTS}")
    try:
        tensors = load_file(weights)
    except Exception as err:  # safetensors raises its own error types
        raise ConfigError(f"{weights}: not a readable safetensors file ({err})") from None
    return _build(description, tensors, folder)


def load_for_run(path: str | Path, overrides: list[str]) -> tuple[Trained, DictConfig]:
    """A trained model and its run config with ``overrides`` applied (``model.*`` cannot
    change); ConfigError naming the file or the key when either is unusable."""
    trained = load_trained(path)
    saved = trained.config
    cfg = apply_overrides(saved, overrides)
    # model.compile changes how, not what, the model computes
    changed = [k for k in cfg.model if saved.model[k] != cfg.model[k] and k != "compile"]
    if changed:
        raise ConfigError(
            f"model.{changed[0]}: the model comes from the checkpoint and cannot be overridden"
        )
    return trained, cfg


# the name the commands and tests use: a model and its run config with overrides
load_checkpoint = load_for_run


def datamodule_for(
    trained: Trained, cfg: DictConfig, batch_size: int | None = None
) -> FramesDataModule:
    """The data of ``cfg.data``, prepared if need be and normalised with the model's own
    statistics; it must fit the model."""
    data = OmegaConf.to_container(cfg.data, resolve=True)
    if batch_size is not None:
        data["eval_batch_size"] = batch_size
    dm = FramesDataModule(data, seed=cfg.seed)
    if dm.observation != trained.data.observation:
        raise ConfigError(
            f"data.dataset: {cfg.data.dataset} is {dm.observation} data; the model was trained "
            f"on {trained.data.observation}"
        )
    if dm.x_dim != trained.model.x_dim:
        raise ConfigError(
            f"data.frame_size: {cfg.data.frame_size}; the model reads frames of "
            f"{trained.model.x_dim} samples"
        )
    dm.setup()
    if trained.data.normalisation is not None:
        dm.use_normalisation(trained.data.normalisation)
    return dm


def prepared_datamodule(trained: Trained, cfg: DictConfig) -> FramesDataModule | None:
    """The DataModule of ``cfg.data`` if its stores are already prepared, else None: never
    prepares (a model samples without its training data)."""
    from .data.pipeline import locate

    try:
        _, sources, fp, folder = locate(FramesDataModule(cfg.data).cfg, fetch=False)
    except (ConfigError, CorpusError, OSError):
        return None
    if not all(is_finished(folder / f"{s}.h5", fp) for s in SPLITS if s in sources):
        return None
    return datamodule_for(trained, cfg)


def data_difference(trained: Trained, dm: FramesDataModule) -> str | None:
    """A sentence when the store on disk is not the one the model was trained on, else None."""
    store = dm.store("train")
    norm = trained.data.normalisation
    if norm is None:
        return (
            f"{trained.path} does not record its training normalisation (it predates that "
            f"record): scoring with the statistics of {dm.folder} (mean {store.mean:.6g}, "
            f"std {store.std:.6g})"
        )
    fp = store.attrs.get("fingerprint")
    if trained.data.fingerprint in (None, fp):
        return None
    own = store.attrs
    return (
        f"the data in {dm.folder} differs from the store the model was trained on (fingerprint "
        f"{str(fp)[:12]}, trained on {trained.data.fingerprint[:12]}; its own statistics: mean "
        f"{own['mean']:.6g}, std {own['std']:.6g}): scored with the model's normalisation "
        f"(mean {norm.mean:.6g}, std {norm.std:.6g})"
    )


def run_dir(ckpt: str | Path, cfg: DictConfig) -> Path:
    """The run folder: the one holding checkpoints/<ckpt>, an export folder itself, else the
    config's out_dir."""
    ckpt = Path(ckpt).resolve()
    if ckpt.is_dir():
        return ckpt
    return ckpt.parent.parent if ckpt.parent.name == "checkpoints" else Path(cfg.out_dir)


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
