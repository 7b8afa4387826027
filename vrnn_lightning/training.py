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
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from . import preemption
from .checkpoint_io import AtomicCheckpointIO
from .config import NOT_TRAINER_ARGS, ConfigError, check_hardware, to_yaml, wandb_mode
from .data.datamodule import FramesDataModule
from .module import VRNNModule
from .preemption.legacy import ResumeLegacyCheckpoint
from .preemption.run_folder import LAST_CHECKPOINT, unmark_finished
from .preemption.slurm import slurm_plugins
from .quiet import quiet_known_noise

WANDB_ID_FILE = "wandb_run_id.txt"
LEARNING_CURVES = "learning_curves.png"


def trainer_kwargs(cfg: DictConfig) -> dict:
    kwargs = OmegaConf.to_container(cfg.trainer, resolve=True)
    for key in NOT_TRAINER_ARGS:
        kwargs.pop(key, None)
    return {k: v for k, v in kwargs.items() if v is not None}


def matmul_precision(cfg: DictConfig, cuda: bool) -> str | None:
    """torch.set_float32_matmul_precision's argument for this run (None: leave torch's):
    trainer.float32_matmul_precision, or "high" (TF32 matrix products) on a CUDA GPU when it
    is unset; a CPU keeps IEEE float32 unless the key says otherwise."""
    chosen = cfg.trainer.get("float32_matmul_precision")
    if chosen is not None:
        return chosen
    on_gpu = cfg.trainer.accelerator in ("auto", "gpu", "cuda")
    return "high" if cuda and on_gpu else None


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
        init = dict(
            project=wb.project or os.environ.get("WANDB_PROJECT", "vrnn-lightning"),
            entity=wb.entity,
            group=wb.group,
            tags=list(wb.tags),
            name=cfg.name,
            dir=str(out_dir),
            mode=mode,
            id=run_id,
            resume="allow" if run_id else None,
            config=OmegaConf.to_container(cfg, resolve=True),
        )
        # rank 0 opens the W&B run itself and hands it to the logger: WandbLogger's own
        # wandb.init passes an "anonymous" setting that wandb >= 0.19 warns has no effect.
        # Other DDP ranks hold no W&B run (the logger's experiment is rank 0's only).
        experiment = open_wandb_run(init) if rank_zero_only.rank == 0 else None
        logger = WandbLogger(save_dir=str(out_dir), experiment=experiment, **init)
        if experiment is not None:
            id_file.write_text(experiment.id)
        loggers.append(logger)
    return loggers


def open_wandb_run(init: dict):
    """wandb.init, with the step axis WandbLogger defines for a run it opens itself."""
    import wandb

    run = wandb.init(**init)
    run.define_metric("trainer/global_step")
    run.define_metric("*", step_metric="trainer/global_step", step_sync=True)
    return run


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


def make_callbacks(cfg: DictConfig, out_dir: Path) -> list:
    from .callbacks import ParameterSummary, ProgressBar, SampleCallback

    callbacks = [
        # the best on val/elbo, for evaluation
        ModelCheckpoint(
            dirpath=str(out_dir / "checkpoints"),
            filename="best-{epoch}-{step}",
            monitor="val/elbo",
            mode="max",
            save_top_k=1,
            # judged when a validation ends, never at a training epoch's end: a run that
            # max_steps stops before its first validation has no val/elbo there to judge
            save_on_train_epoch_end=False,
        ),
        # last.ckpt, for resuming, and the stop on SIGTERM / SIGUSR1 (after the best: its
        # state is in last.ckpt)
        preemption.ResumePoint(out_dir / "checkpoints" / LAST_CHECKPOINT),
        ResumeLegacyCheckpoint(),
        LearningRateMonitor(logging_interval="step"),
        SampleCallback.from_config(cfg, out_dir),  # samples (and W&B media) at validation
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
    ckpt_path = preemption.resolve_ckpt_path(cfg)
    quiet_known_noise(resuming=ckpt_path is not None)
    if ckpt_path is not None:
        preemption.check_resume(cfg, ckpt_path)  # before anything is written
    rank_zero = rank_zero_only.rank == 0
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    precision = matmul_precision(cfg, torch.cuda.is_available())
    if precision is not None:
        torch.set_float32_matmul_precision(precision)

    # Everything that can refuse the run comes before anything is written: the data (prepared
    # here on rank 0; Lightning's prepare_data in fit then finds the stores finished), the
    # module and the Trainer. Only then the run folder, config.yaml and the W&B run.
    datamodule = FramesDataModule(cfg.data, seed=cfg.seed)
    if rank_zero:
        datamodule.prepare_data()
        datamodule.check_validation(cfg.trainer.limit_val_batches)
    module = VRNNModule.for_data(
        datamodule,
        cfg.model,
        cfg.optim,
        seed=cfg.seed,
        run_config=OmegaConf.to_container(cfg, resolve=True),
    )
    module.command = command  # the checkpoints' description names the command line
    callbacks = make_callbacks(cfg, out_dir)
    resume_point = next(c for c in callbacks if isinstance(c, preemption.ResumePoint))
    try:
        trainer = L.Trainer(
            # enable_model_summary: make_callbacks adds its own ParameterSummary, or none
            **{**trainer_kwargs(cfg), "enable_model_summary": False},
            default_root_dir=str(out_dir),
            logger=False,  # the loggers come once the Trainer is known to start (below)
            callbacks=callbacks + list(extra_callbacks or []),
            log_every_n_steps=cfg.logger.log_every_n_steps,
            # a checkpoint is complete or absent, never truncated; under SLURM, no requeue
            # from inside a signal handler (preemption/slurm.py)
            plugins=[AtomicCheckpointIO(), *slurm_plugins()],
            # every loader shards itself (data/resumable.py): Lightning's sampler re-shuffled
            # the streams and buckets
            use_distributed_sampler=False,
        )
    except (ValueError, TypeError) as err:  # Lightning's MisconfigurationException included
        raise ConfigError(f"trainer: {err}") from None
    if rank_zero:  # under DDP every rank runs this; one writes the run folder
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.yaml").write_text(to_yaml(cfg))
        unmark_finished(out_dir)  # a finished run trained further is unfinished again
    loggers = make_loggers(cfg, out_dir, resuming=ckpt_path is not None)
    trainer.loggers = loggers
    exit_code = 1  # what W&B records if fit raises
    last = out_dir / "checkpoints" / LAST_CHECKPOINT
    resume_point.signals.install()  # a signal during data preparation stops at the first batch
    try:
        # weights_only: a resumed checkpoint never runs code while it loads
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
        exit_code = 0
    except preemption.Preempted as stop:  # every rank saved last.ckpt at the same batch
        exit_code = stop.exit_code
        name = signal.Signals(stop.signum).name
        raise RunInterrupted(name, exit_code, stop.step, last, saved=True) from None
    except SIGTERMException:  # Lightning's own handler, before fit's first hook replaced it
        exit_code = 128 + signal.SIGTERM
        raise RunInterrupted("SIGTERM", exit_code, trainer.global_step, last, False) from None
    except SystemExit:
        if not trainer.interrupted:
            raise
        # Ctrl-C: Lightning stopped at once and exits 1; say so, and exit as an interrupt
        exit_code = 128 + signal.SIGINT
        raise RunInterrupted("Ctrl-C", exit_code, trainer.global_step, last, False) from None
    finally:
        resume_point.signals.restore()
        close_wandb(loggers, exit_code)
    if rank_zero:
        from .plots import plot_learning_curves

        plot_learning_curves(out_dir, out_dir / LEARNING_CURVES)
        preemption.mark_finished(out_dir, trainer.global_step)
    return out_dir


def close_wandb(loggers: list, exit_code: int) -> None:
    """Close the W&B run (and its offline files); only exit code 0 marks it finished."""
    for logger in loggers:
        if isinstance(logger, WandbLogger) and rank_zero_only.rank == 0:
            if exit_code in (*preemption.EXIT_CODES.values(), 128 + signal.SIGINT):
                logger.experiment.mark_preempting()  # W&B: resumable, not failed
            logger.experiment.finish(exit_code=exit_code)


class RunInterrupted(Exception):
    """A run stopped before its end by SIGTERM, SIGUSR1 or Ctrl-C: nothing marks it
    finished; the same command resumes it. ``exit_code`` is 128 + the signal's number."""

    def __init__(self, signal_name: str, exit_code: int, step: int, last: Path, saved: bool):
        self.exit_code = exit_code
        self.rank = rank_zero_only.rank  # under DDP every rank stops; one of them says so
        where = "saved at that step" if saved else "is from the last validation, if any"
        super().__init__(
            f"interrupted by {signal_name} at step {step}; {last} {where}. The same command "
            "resumes the run (ckpt_path=auto)"
        )
