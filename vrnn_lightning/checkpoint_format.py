"""The checkpoint format: what a vrnn-fit checkpoint and a vrnn-export folder carry, and
reading a checkpoint file safely. No model is built here (checkpoint.py builds one).

A vrnn-fit checkpoint holds, beside Lightning's own entries, ``checkpoint["vrnn_lightning"]``
(written by VRNNModule.describe_into at every save): the run config, what x_t is (audio or
strokes, x_dim, frame size, sample rate), the normalisation the model was trained with, the
corpus name and the fingerprint of its store, and the metrics at save time: enough to score
and to generate without the training data. An export folder holds the same description as
config.json beside the weights as safetensors (model_export.py).

Loading never executes code from the file: checkpoints are read with
``torch.load(weights_only=True)`` (tensors and plain values only), export folders with
safetensors. A file that needs more than that is refused, not trusted.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from .config import Config, ConfigError
from .data.store import Normalisation, what_x_is
from .version import __version__

DESCRIPTION_KEY = "vrnn_lightning"  # the checkpoint entry that describes the model
FORMAT_VERSION = 1
EXPORT_WEIGHTS = "model.safetensors"
EXPORT_CONFIG = "config.json"
EXPORT_CARD = "README.md"


@dataclass
class DataDescription:
    """What x_t is and how the training data was normalised."""

    dataset: str
    observation: str  # "audio" or "strokes" (data/store.py: what_x_is)
    x_dim: int
    frame_size: int  # samples per frame (audio); 1 for pen steps
    sample_rate: int | None  # audio only
    normalisation: Normalisation | None  # None: a checkpoint older than this record
    fingerprint: str | None = None  # of the training store (data/store.py: fingerprint)

    def as_dict(self) -> dict:
        out = dict(self.__dict__)
        out["normalisation"] = self.normalisation.as_dict() if self.normalisation else None
        return out

    @classmethod
    def from_dict(cls, d: dict) -> DataDescription:
        d = dict(d)
        norm = d.pop("normalisation", None)
        return cls(**d, normalisation=Normalisation(**norm) if norm else None)

    # what generation needs of a DataModule
    def denormalise(self, x):
        return self.normalisation.denormalise(x)


def describe(
    cfg: DictConfig | dict,
    datamodule,
    model: nn.Module,
    metrics: dict,
    step: int,
    command: str | None = None,
) -> dict:
    """The ``checkpoint["vrnn_lightning"]`` entry: plain values only (it must load with
    ``weights_only=True``)."""

    train = datamodule.store("train")
    fingerprint = train.attrs.get("fingerprint")
    data = DataDescription(
        dataset=datamodule.cfg.dataset,
        observation=datamodule.observation,
        x_dim=model.x_dim,
        frame_size=datamodule.frame_size,
        sample_rate=datamodule.sample_rate,
        normalisation=train.normalisation,
        fingerprint=None if fingerprint is None else str(fingerprint),  # a plain str
    )
    if isinstance(cfg, DictConfig):
        cfg = OmegaConf.to_container(cfg, resolve=True)
    return {
        "format_version": FORMAT_VERSION,
        "config": cfg,
        "data": data.as_dict(),
        "metrics": {k: float(v) for k, v in metrics.items()},
        "step": int(step),
        "command": command,
        "version": __version__,
    }


def describe_training(trainer, model: nn.Module, config: dict, command: str | None = None) -> dict:
    """``describe`` of a model being trained on ``trainer.datamodule`` (a FramesDataModule),
    with the trainer's current scalar metrics and step."""
    metrics = {k: v for k, v in trainer.callback_metrics.items() if getattr(v, "numel", int)() == 1}
    return describe(config, trainer.datamodule, model, metrics, trainer.global_step, command)


# ---------------------------------------------------------------- reading a checkpoint file


def read_checkpoint(path: str | Path) -> dict:
    """The dict in a vrnn-fit checkpoint, read with weights_only=True; ConfigError saying what
    the file is when it is not one."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(
            f"{path} is a folder, not a checkpoint file or an export folder "
            f"(vrnn-export writes {EXPORT_WEIGHTS} and {EXPORT_CONFIG})"
        )
    if not path.is_file():
        raise ConfigError(f"checkpoint {path} does not exist")
    if not zipfile.is_zipfile(path):  # torch.save's format since torch 1.6
        with open(path, "rb") as f:
            head = f.read(64)
        what = "an empty file" if not head else "not a torch checkpoint (no torch.save archive)"
        if head and all(32 <= b < 127 or b in b"\t\r\n" for b in head):
            what = f"a text file, not a torch checkpoint (it starts {head[:40].decode()!r})"
        raise ConfigError(f"{path} is {what}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # weights_only refuses anything a pickle would rebuild by calling code
        wanted = re.search(r"GLOBAL ([\w.]+)", str(err))  # e.g. posix.system
        raise ConfigError(
            f"{path}: refused: the file asks to run Python code while loading ("
            + (f"it calls {wanted.group(1)}" if wanted else "objects only code can rebuild")
            + "); a vrnn-fit checkpoint holds only tensors and plain values. Nothing from the "
            "file was run."
        ) from None
    except (RuntimeError, OSError, EOFError, ValueError) as err:
        raise ConfigError(f"{path}: a damaged or truncated torch file ({err})") from None
    if isinstance(ckpt, torch.Tensor):
        raise ConfigError(
            f"{path} holds a bare tensor of shape {tuple(ckpt.shape)}, not a vrnn-fit checkpoint"
        )
    if not isinstance(ckpt, dict):
        raise ConfigError(f"{path} holds a {type(ckpt).__name__}, not a vrnn-fit checkpoint")
    hparams = ckpt.get("hyper_parameters")
    if "state_dict" not in ckpt or not (
        DESCRIPTION_KEY in ckpt
        or (isinstance(hparams, dict) and ("config" in hparams or "observation" in hparams))
    ):
        keys = ", ".join(sorted(map(str, ckpt))[:8]) or "none"
        raise ConfigError(
            f"{path} is a torch file but not a vrnn-fit checkpoint (its keys: {keys}; "
            "expected state_dict and the run config)"
        )
    return ckpt


def legacy_description(ckpt: dict) -> dict:
    """A checkpoint without the description entry (older, or trained outside vrnn-fit): the
    config and what x_t is from the module's hyper-parameters, in either form VRNNModule has
    saved (the whole run config and the corpus kind; or its explicit arguments, with the run
    config beside them when vrnn-fit trained it); no normalisation (the store's is used, with
    a note)."""
    hp = ckpt["hyper_parameters"]
    if "config" in hp:
        run, observation = hp["config"], hp["data_kind"]
    else:
        run = hp.get("run_config") or {
            "model": hp["model"],
            "optim": hp.get("optim", {}),
            "seed": hp.get("seed", 0),
        }
        observation = hp["observation"]
    cfg = OmegaConf.merge(OmegaConf.structured(Config), run)
    _, x_dim = what_x_is({"kind": observation, "frame_size": cfg.data.frame_size})
    audio = observation == "audio"
    return {
        "config": run,
        "data": {
            "dataset": cfg.data.dataset,
            "observation": observation,
            "x_dim": hp.get("x_dim", x_dim),
            "frame_size": cfg.data.frame_size if audio else 1,
            "sample_rate": cfg.data.sample_rate if audio else None,
            "normalisation": None,
        },
        "metrics": {},
        "step": ckpt.get("global_step"),
    }


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
