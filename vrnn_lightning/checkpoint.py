"""A trained model from disk: loading a vrnn-fit checkpoint with its run config, the data it
was trained on, the device to run it on and the run folder it belongs to.

Shared by vrnn-eval, vrnn-sample and the sweep report.
"""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from .config import Config, ConfigError, apply_overrides, merge_checked
from .data.datamodule import FramesDataModule
from .data.store import what_x_is
from .module import VRNNModule


def load_checkpoint(ckpt: str | Path, overrides: list[str]) -> tuple[VRNNModule, DictConfig]:
    """The module of a vrnn-fit checkpoint (on the CPU) and its run config with ``overrides``
    applied; ConfigError naming the file or the key when either is unusable. A checkpoint
    trained outside vrnn-fit (no run config) gets the default config around its model."""
    ckpt = Path(ckpt)
    if not ckpt.is_file():
        raise ConfigError(f"--ckpt: checkpoint {ckpt} does not exist")
    try:
        saved = torch.load(ckpt, map_location="cpu", weights_only=True)
        module = VRNNModule(**module_arguments(saved["hyper_parameters"]))
        module.load_state_dict(saved["state_dict"])
    except Exception as err:  # any unreadable or foreign file: say which and why
        raise ConfigError(f"--ckpt: cannot load {ckpt} as a vrnn-fit checkpoint: {err}") from err
    run = module.run_config or {
        "model": module.hparams["model"],
        "optim": module.hparams["optim"],
        "seed": module.seed,
    }
    saved = merge_checked(OmegaConf.structured(Config), run, f"the config saved in {ckpt}")
    cfg = apply_overrides(saved, overrides)
    # model.compile changes how, not what, the model computes
    changed = [k for k in cfg.model if saved.model[k] != cfg.model[k] and k != "compile"]
    if changed:
        raise ConfigError(
            f"model.{changed[0]}: the model comes from the checkpoint and cannot be overridden"
        )
    return module, cfg


def module_arguments(hparams: dict) -> dict:
    """VRNNModule's keywords from a checkpoint's hyper-parameters, also from a checkpoint
    written when the module took the whole run config and the corpus kind."""
    if "config" not in hparams:
        return dict(hparams)
    config, observation = hparams["config"], hparams["data_kind"]
    _, x_dim = what_x_is({"kind": observation, "frame_size": config["data"]["frame_size"]})
    return {
        "model": config["model"],
        "optim": config["optim"],
        "observation": observation,
        "x_dim": x_dim,
        "batch_size": config["data"]["batch_size"],
        "seq_len": config["data"]["seq_len"],
        "seed": config["seed"],
        "run_config": config,
    }


def run_dir(ckpt: Path, cfg: DictConfig) -> Path:
    """The run folder: the one holding checkpoints/<ckpt>, else the config's out_dir."""
    ckpt = Path(ckpt).resolve()
    return ckpt.parent.parent if ckpt.parent.name == "checkpoints" else Path(cfg.out_dir)


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def datamodule_for(
    module: VRNNModule, cfg: DictConfig, batch_size: int | None = None
) -> FramesDataModule:
    """The data of ``cfg.data``, prepared if need be; it must fit the checkpoint's model."""
    data = OmegaConf.to_container(cfg.data, resolve=True)
    if batch_size is not None:
        data["eval_batch_size"] = batch_size
    dm = FramesDataModule(data, seed=cfg.seed)
    if dm.observation != module.observation:
        raise ConfigError(
            f"data.dataset: {cfg.data.dataset} is {dm.observation} data; the model was trained "
            f"on {module.observation}"
        )
    if dm.x_dim != module.x_dim:
        raise ConfigError(
            f"data.frame_size: {cfg.data.frame_size}; the model reads frames of "
            f"{module.model.x_dim} samples"
        )
    dm.setup()
    return dm
