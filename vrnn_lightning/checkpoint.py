"""A trained model on its own: what a checkpoint or an export folder carries, read safely;
the data it was trained on, the device to run it on, the run folder it belongs to; export.

A vrnn-fit checkpoint holds, beside Lightning's own entries, ``checkpoint["vrnn_lightning"]``
(written by VRNNModule.describe_into at every save): the run config, what x_t is (audio or
strokes, x_dim, frame size, sample rate), the normalisation the model was trained with, the
corpus name and the fingerprint of its store, and the metrics at save time: enough to score
and to generate without the training data.

Loading never executes code from the file: checkpoints are read with
``torch.load(weights_only=True)`` (tensors and plain values only), export folders with
safetensors. A file that needs more than that is refused, not trusted.
"""

from __future__ import annotations

import json
import pickle
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from .config import Config, ConfigError, apply_overrides, merge_checked
from .data.datamodule import FramesDataModule
from .data.source import CorpusError
from .data.store import SPLITS, Normalisation, is_finished, what_x_is
from .family import build_model
from .model import VRNN
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


def describe(
    cfg: DictConfig | dict,
    datamodule,
    model: VRNN,
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


def describe_training(trainer, model: VRNN, config: dict, command: str | None = None) -> dict:
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


def _describe_legacy(ckpt: dict) -> dict:
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


def _build(description: dict, weights: dict[str, torch.Tensor], source: Path) -> Trained:
    cfg = merge_checked(
        OmegaConf.structured(Config), description["config"], f"the config saved in {source}"
    )
    data = DataDescription.from_dict(description["data"])
    model = build_model(
        observation=data.observation, x_dim=data.x_dim, **OmegaConf.to_container(cfg.model)
    )
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
    description = ckpt.get(DESCRIPTION_KEY) or _describe_legacy(ckpt)
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


# ---------------------------------------------------------------- export


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
