"""Training a run: the DataModule, the VRNNModule, the loggers, the callbacks and the Trainer
that a run config describes; what vrnn-fit runs.

The run folder (``out_dir``) holds the resolved config, a CSV of every logged metric, the
checkpoints (best on val/elbo, and last; each describes the model: vrnn_lightning.checkpoint),
generated samples, unless disabled the offline W&B run, with logger.tensorboard=true TensorBoard
event files, and at the end a PNG of the learning curves.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from .checkpoint_io import AtomicCheckpointIO
from .config import ConfigError, check_hardware, to_yaml, wandb_mode
from .data.datamodule import FramesDataModule
from .module import VRNNModule
from .quiet import quiet_known_noise

# TrainerConfig keys that train() interprets itself instead of passing to lightning.Trainer
_NOT_TRAINER_ARGS = ("early_stopping_patience",)
WANDB_ID_FILE = "wandb_run_id.txt"
LAST_CHECKPOINT = "last.ckpt"  # what ckpt_path=last resumes
LEARNING_CURVES = "learning_curves.png"


def trainer_kwargs(cfg: DictConfig) -> dict:
    kwargs = OmegaConf.to_container(cfg.trainer, resolve=True)
    for key in _NOT_TRAINER_ARGS:
        kwargs.pop(key)
    return {k: v for k, v in kwargs.items() if v is not None}


def resolve_ckpt_path(cfg: DictConfig) -> str | None:
    """``ckpt_path=last`` is the run folder's last checkpoint, if the run got that far."""
    checkpoints = Path(cfg.out_dir) / "checkpoints"
    if cfg.ckpt_path in (None, ""):
        if checkpoints.is_dir() and any(checkpoints.glob("*.ckpt")):
            # never overwrite another run's checkpoints silently
            raise ConfigError(
                f"out_dir: {cfg.out_dir} already holds a run's checkpoints; resume it with "
                "ckpt_path=last, or start a new run with another name=... or out_dir=..."
            )
        return None
    if cfg.ckpt_path == "last":
        last = checkpoints / LAST_CHECKPOINT
        if not last.is_file():
            print(f"vrnn-fit: no {last} yet; starting from scratch", file=sys.stderr)
            return None
        return str(last)
    if not Path(cfg.ckpt_path).is_file():
        raise ConfigError(f"ckpt_path: checkpoint {cfg.ckpt_path} does not exist")
    return cfg.ckpt_path


def check_resume(cfg: DictConfig, ckpt_path: str) -> None:
    """ConfigError naming the first model key that differs from the checkpoint being resumed,
    before anything is written: resuming with another model.h_dim wrote the new config.yaml
    beside the old checkpoints, then failed with a size-mismatch traceback."""
    from .checkpoint import module_arguments

    try:
        saved = torch.load(ckpt_path, map_location="cpu", weights_only=True, mmap=True)
        model = module_arguments(saved["hyper_parameters"])["model"]
    except Exception as err:  # not a vrnn-fit checkpoint: Lightning says why when it loads
        raise ConfigError(f"ckpt_path: cannot resume from {ckpt_path}: {err}") from None
    for key, value in cfg.model.items():
        if key != "compile" and key in model and model[key] != value:
            raise ConfigError(
                f"model.{key}: {value!r} here, but the run being resumed ({ckpt_path}) was "
                f"trained with {model[key]!r}; resume with the same model.* settings, or start "
                "a new run with another name=... or out_dir=..."
            )


def make_loggers(cfg: DictConfig, out_dir: Path, resuming: bool) -> list:
    # csv/version_N/metrics.csv: a resumed run adds a version instead of replacing the file
    loggers = [CSVLogger(save_dir=str(out_dir), name="csv")]
    if cfg.logger.tensorboard:
        loggers.append(tensorboard_logger(out_dir))
    wb = cfg.logger.wandb
    mode = wandb_mode(cfg)
    # fast_dev_run replaces every logger with a dummy: no W&B run to open and leave behind
    if wb.enabled and mode != "disabled" and not cfg.trainer.get("fast_dev_run"):
        # one W&B run per run folder: a resumed run continues the same W&B run
        id_file = out_dir / WANDB_ID_FILE
        run_id = id_file.read_text().strip() if resuming and id_file.is_file() else None
        logger = WandbLogger(
            project=wb.project or os.environ.get("WANDB_PROJECT", "vrnn-lightning"),
            entity=wb.entity,
            group=wb.group,
            tags=list(wb.tags),
            name=cfg.name,
            save_dir=str(out_dir),
            mode=mode,
            id=run_id,
            resume="allow" if run_id else None,
            config=OmegaConf.to_container(cfg, resolve=True),
        )
        # Lightning always passes wandb.init an "anonymous" setting (None by default), which
        # wandb >= 0.19 warns has no effect: leave it out
        getattr(logger, "_wandb_init", {}).pop("anonymous", None)
        if rank_zero_only.rank == 0:  # other DDP ranks hold no W&B run
            id_file.write_text(logger.experiment.id)
        loggers.append(logger)
    return loggers


def tensorboard_logger(out_dir: Path):
    """logger.tensorboard=true: TensorBoard event files in <out_dir>/tensorboard."""
    from lightning.pytorch.loggers import TensorBoardLogger

    try:
        import tensorboard  # noqa: F401  (TensorBoardLogger needs it, or tensorboardX)
    except ImportError:
        raise ConfigError(
            "logger.tensorboard: TensorBoard is not installed; pip install tensorboard"
        ) from None
    return TensorBoardLogger(save_dir=str(out_dir), name="tensorboard", default_hp_metric=False)


def make_callbacks(cfg: DictConfig, out_dir: Path, command: str | None = None) -> list:
    from .callbacks import (
        AgreeOnSigterm,
        CheckpointOnSigterm,
        DescribeCheckpoint,
        ParameterSummary,
        ProgressBar,
        ResumeAtEpochEnd,
        SampleCallback,
    )

    checkpoints = str(out_dir / "checkpoints")
    callbacks = [
        # the best on val/elbo, for evaluation
        ModelCheckpoint(
            dirpath=checkpoints,
            filename="best-{epoch}-{step}",
            monitor="val/elbo",
            mode="max",
            save_top_k=1,
            # judged when a validation ends, never at a training epoch's end: a run that
            # max_steps stops before its first validation has no val/elbo there to judge
            save_on_train_epoch_end=False,
        ),
        # the latest, after every validation, for resuming: not ModelCheckpoint(save_last=True),
        # which rewrites last.ckpt only when a best checkpoint is saved
        ModelCheckpoint(
            dirpath=checkpoints, filename="last", save_top_k=1, enable_version_counter=False
        ),
        LearningRateMonitor(logging_interval="step"),
        SampleCallback.from_config(cfg, out_dir),  # samples (and W&B media) at validation
        DescribeCheckpoint(OmegaConf.to_container(cfg, resolve=True), command),
        AgreeOnSigterm(),
        CheckpointOnSigterm(out_dir / "checkpoints" / LAST_CHECKPOINT),
        ResumeAtEpochEnd(),
    ]
    if cfg.trainer.early_stopping_patience:
        callbacks.append(
            # strict=False: a run that ends before its first validation has nothing to stop on
            EarlyStopping(
                "val/elbo", mode="max", patience=cfg.trainer.early_stopping_patience, strict=False
            )
        )
    if cfg.trainer.enable_progress_bar:
        callbacks.append(ProgressBar())
    if cfg.trainer.get("enable_model_summary", True) is not False:
        callbacks.append(ParameterSummary())
    return callbacks


def train(cfg: DictConfig, extra_callbacks: list | None = None, command: str | None = None) -> Path:
    """Train as the run config ``cfg`` says; returns the run folder. ``extra_callbacks`` (e.g.
    a benchmark's probe) run beside the run's own; ``command`` (the command line) goes into
    every checkpoint's description."""
    out_dir = Path(cfg.out_dir)
    check_hardware(cfg)  # before the run folder is made
    ckpt_path = resolve_ckpt_path(cfg)
    quiet_known_noise(resuming=ckpt_path is not None)
    if ckpt_path is not None:
        check_resume(cfg, ckpt_path)  # before anything is written
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.yaml").write_text(to_yaml(cfg))
    L.seed_everything(cfg.seed, workers=True, verbose=False)

    datamodule = FramesDataModule(cfg.data, seed=cfg.seed)
    module = VRNNModule.for_data(
        datamodule,
        cfg.model,
        cfg.optim,
        seed=cfg.seed,
        run_config=OmegaConf.to_container(cfg, resolve=True),
    )
    loggers = make_loggers(cfg, out_dir, resuming=ckpt_path is not None)
    try:
        trainer = L.Trainer(
            # enable_model_summary: make_callbacks adds its own ParameterSummary, or none
            **{**trainer_kwargs(cfg), "enable_model_summary": False},
            default_root_dir=str(out_dir),
            logger=loggers,
            callbacks=make_callbacks(cfg, out_dir, command) + list(extra_callbacks or []),
            log_every_n_steps=cfg.logger.log_every_n_steps,
            plugins=[AtomicCheckpointIO()],  # a checkpoint is complete or absent, never truncated
        )
    except (ValueError, TypeError) as err:  # Lightning's MisconfigurationException included
        close_wandb(loggers, exit_code=2)
        raise ConfigError(f"trainer: {err}") from None
    exit_code = 1  # what W&B records if fit raises
    last = out_dir / "checkpoints" / LAST_CHECKPOINT
    try:
        # weights_only: a resumed checkpoint never runs code while it loads
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
        exit_code = 0
    except SIGTERMException:  # Lightning's graceful stop: CheckpointOnSigterm saved last.ckpt
        exit_code = 128 + signal.SIGTERM
        saved = any(getattr(c, "saved", False) for c in trainer.callbacks)
        raise RunInterrupted("SIGTERM", exit_code, trainer.global_step, last, saved) from None
    except SystemExit:
        if not trainer.interrupted:
            raise
        # Ctrl-C: Lightning stopped at once and exits 1; say so, and exit as an interrupt
        exit_code = 128 + signal.SIGINT
        raise RunInterrupted("Ctrl-C", exit_code, trainer.global_step, last, False) from None
    finally:
        close_wandb(loggers, exit_code)
    if rank_zero_only.rank == 0:
        from .plots import plot_learning_curves

        plot_learning_curves(out_dir, out_dir / LEARNING_CURVES)
    return out_dir


def close_wandb(loggers: list, exit_code: int) -> None:
    """Close the W&B run (and its offline files); only exit code 0 marks it finished."""
    for logger in loggers:
        if isinstance(logger, WandbLogger) and rank_zero_only.rank == 0:
            if exit_code in (128 + signal.SIGTERM, 128 + signal.SIGINT):
                logger.experiment.mark_preempting()  # W&B: resumable, not failed
            logger.experiment.finish(exit_code=exit_code)


class RunInterrupted(Exception):
    """A run stopped before its end by SIGTERM or Ctrl-C: nothing marks it finished; it
    resumes with ckpt_path=last. ``exit_code`` is 128 + the signal's number."""

    def __init__(self, signal_name: str, exit_code: int, step: int, last: Path, saved: bool):
        self.exit_code = exit_code
        self.rank = rank_zero_only.rank  # under DDP every rank stops; one of them says so
        where = "saved at that step" if saved else "is from the last validation, if any"
        super().__init__(
            f"interrupted by {signal_name} at step {step}; {last} {where}. Resume the run "
            "with the same command and ckpt_path=last"
        )
