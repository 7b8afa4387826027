"""Training callbacks: samples written (and logged to W&B) as the model trains; the
description every checkpoint carries; the checkpoint a run stopped by SIGTERM leaves, and
the resume of a checkpoint written at a training epoch's end."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelSummary, RichProgressBar
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_warn
from lightning.pytorch.utilities.exceptions import SIGTERMException
from lightning.pytorch.utilities.model_summary.model_summary import (
    get_formatted_model_size,
    get_human_readable_count,
)

from .checkpoint import DESCRIPTION_KEY, describe_training
from .figure_worker import FigureWorker
from .generation import Generated, generate_and_save


class SampleCallback(L.Callback):
    """Every ``every_n_validations`` validations (0: never), on global rank 0 only, generate
    ``n`` sequences of ``steps`` steps (continuing ``primer_steps`` steps of a validation
    sequence when > 0) into ``<out_dir>/samples/step=<global_step>/``, and log them to W&B
    when a WandbLogger is attached. The sanity check does not count."""

    def __init__(
        self,
        out_dir: str | Path,
        n: int = 4,
        steps: int = 160,
        primer_steps: int = 0,
        every_n_validations: int = 1,
        primer_index: int = 0,
        seed: int = 0,
        peak_normalise: bool = True,
    ):
        super().__init__()
        self.out_dir = Path(out_dir)
        self.n, self.steps = n, steps
        self.primer_steps, self.primer_index = primer_steps, primer_index
        self.every_n_validations = every_n_validations
        self.seed = seed
        self.peak_normalise = peak_normalise
        self.validations = 0  # finished validations, sanity check excluded
        self.draw = FigureWorker()  # figures out of the training process: its memory stays flat

    @classmethod
    def from_config(cls, cfg, out_dir: str | Path) -> SampleCallback:
        s = cfg.sample
        return cls(
            out_dir,
            n=s.n,
            steps=s.steps,
            primer_steps=s.primer_steps,
            every_n_validations=s.every_n_validations,
            primer_index=cfg.sample.primer_index,
            seed=cfg.seed,
            peak_normalise=s.peak_normalise,
        )

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.draw.close()

    # the count survives a resume, so "every n validations" keeps its rhythm
    def state_dict(self) -> dict:
        return {"validations": self.validations}

    def load_state_dict(self, state_dict: dict) -> None:
        self.validations = state_dict.get("validations", 0)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        self.validations += 1
        if self.every_n_validations <= 0 or self.validations % self.every_n_validations:
            return
        if not trainer.is_global_zero:
            return
        datamodule = trainer.datamodule
        if datamodule is None or not hasattr(datamodule, "denormalise"):
            rank_zero_warn("SampleCallback: no FramesDataModule attached; no samples written")
            return
        step = trainer.global_step
        generated = generate_and_save(
            pl_module.model,
            datamodule,
            self.out_dir / "samples" / f"step={step}",
            n=self.n,
            steps=self.steps,
            primer_steps=self.primer_steps,
            primer_index=self.primer_index,
            # the same seed every time: samples from successive checkpoints compare directly
            seed=self.seed,
            title=f"step {step}",
            peak_normalise=self.peak_normalise,
            draw=self.draw,
        )
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                log_to_wandb(logger, generated, step)


def log_to_wandb(logger: WandbLogger, generated: Generated, step: int) -> None:
    """Images and audio to W&B; a W&B failure (offline, disabled, quota) is a warning only."""
    try:
        # one key per kind of image (samples/waveforms, samples/kl_valid_00, samples/strokes):
        # W&B shows a key's images side by side and wants them the same size
        for path, caption in generated.images:
            logger.log_image(f"samples/{path.stem}", [str(path)], step=step, caption=[caption])
        if generated.audio:
            paths, captions = zip(*generated.audio, strict=True)
            logger.log_audio(
                "samples/audio",
                [str(p) for p in paths],
                step=step,
                caption=list(captions),
                sample_rate=[generated.sample_rate] * len(paths),
            )
    except Exception as err:  # logging must never end a training run
        rank_zero_warn(f"SampleCallback: could not log samples to W&B: {err}")


class DescribeCheckpoint(L.Callback):
    """Adds ``checkpoint["vrnn_lightning"]`` to every checkpoint: the run config, what x_t is,
    the training normalisation and store fingerprint, and the metrics at save time, so that
    the checkpoint alone scores and generates (vrnn_lightning.checkpoint)."""

    def __init__(self, config: dict, command: str | None = None):
        super().__init__()
        self.config = config
        self.command = command  # the vrnn-fit command line, for the model card

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint):
        checkpoint[DESCRIPTION_KEY] = describe_training(
            trainer, pl_module.model, self.config, self.command
        )


class ParameterSummary(ModelSummary):
    """Lightning's model summary without the columns that say nothing here: FLOPs (always 0:
    the module has no example input) and the train/eval mode of every submodule."""

    @staticmethod
    def summarize(
        summary_data, total_parameters, trainable_parameters, model_size, *args, **kwargs
    ) -> None:
        from rich import get_console
        from rich.table import Table

        columns = dict(summary_data)
        table = Table(header_style="bold magenta")
        names = [c for c in ("Name", "Type", "Params", "Params per Device") if c in columns]
        table.add_column(" ", style="dim")
        for name in names:
            table.add_column(name, justify="right" if name.startswith("Params") else "left")
        for i, row in enumerate(zip(*(columns[c] for c in names), strict=True)):
            table.add_row(str(i), *row)
        console = get_console()
        console.print(table)
        console.print(
            f"[bold]Trainable params[/]: {get_human_readable_count(int(trainable_parameters))}"
            f"   [bold]Total params[/]: {get_human_readable_count(int(total_parameters))}"
            f"   [bold]Size[/]: {get_formatted_model_size(model_size)} MB"
        )


class ProgressBar(RichProgressBar):
    """Rich's progress bar without ``v_num`` (the logger's version number: 0 for a first CSV
    run, the tail of a W&B id otherwise; the run folder says which run it is)."""

    def get_metrics(self, trainer, pl_module):
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        return items


class CheckpointOnSigterm(L.Callback):
    """On SIGTERM (a scheduler's preemption), save ``path`` (the run's last.ckpt) before the
    run stops, so that ``ckpt_path=last`` resumes from where it stopped.

    Lightning turns SIGTERM into a SIGTERMException raised between two batches (training or
    validation) or after an epoch's end: the state is whole there, unlike at Ctrl-C, which
    can land inside an optimiser step, so Ctrl-C saves nothing (last.ckpt stays the last
    validation's). The trainer's checkpoint IO writes it atomically (checkpoint_io.py).
    Stopped inside a validation, the checkpoint says that validation has not run yet: the
    resumed run scores it in full (Lightning would skip it; the metrics of its batches done
    are not in a checkpoint)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.saved = False
        self._in_validation = False

    def on_exception(self, trainer: L.Trainer, pl_module, exception: BaseException) -> None:
        # not in the sanity check: no training yet, and its validation state is not the run's
        if isinstance(exception, SIGTERMException) and not trainer.sanity_checking:
            self._in_validation = trainer.validating
            trainer.save_checkpoint(self.path, weights_only=False)  # everything, to resume
            self.saved = True

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module, checkpoint: dict) -> None:
        if self._in_validation:  # only in the save above
            val = checkpoint["loops"]["fit_loop"]["epoch_loop.val_loop.batch_progress"]
            before = val["total"]["completed"] - val["current"]["completed"]
            # one batch started, none done: Lightning restarts the validation from its start
            val["current"].update(ready=1, started=1, processed=0, completed=0)
            val["total"].update(ready=before + 1, started=before + 1)
            val["total"].update(processed=before, completed=before)


class ResumeAtEpochEnd(L.Callback):
    """Resume a checkpoint written in a training epoch's end hooks by finishing that epoch
    where it stopped, and counting it once.

    ModelCheckpoint saves there when validation runs once an epoch, and so does a max_steps
    stop in mid-epoch. Such a checkpoint counts the epoch as processed but not completed.
    Lightning resumes it right only when the epoch had run to its end and max_steps is unset.
    With max_steps set it runs the epoch's end again and counts the epoch as processed twice:
    the run stops at max_epochs one epoch early (a tiny run stopped at max_steps=13 and
    resumed ended at step 23 instead of 46). Without max_steps, after a stop in mid-epoch, it
    starts the next epoch and skips the rest of this one. Taking the count back makes
    Lightning resume the epoch at the batch in the checkpoint (its end then runs, once)."""

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module, checkpoint: dict) -> None:
        loop = checkpoint.get("loops", {}).get("fit_loop")
        if loop is None:
            return
        # data/resumable.py's place: batch 0 once the epoch is done (absent: Lightning's way)
        place = (loop["state_dict"].get("combined_loader") or [{}])[0]
        if trainer.max_steps == -1 and place.get("batch", 0) == 0:
            return  # Lightning resumes this one right
        for epochs in loop["epoch_progress"].values():  # "total" and "current"
            if epochs["processed"] == epochs["started"] == epochs["completed"] + 1:
                epochs["processed"] -= 1


class AgreeOnSigterm(L.Callback):
    """Under DDP, every rank stops on SIGTERM after the same training batch.

    Lightning's SIGTERM handler broadcasts from inside the signal handler, wherever each rank
    happens to be: signalled together (a scheduler signals every process of a job), the ranks'
    broadcasts met other collectives and the run hung (rank 1 waiting in the handler's
    broadcast, rank 0 in another collective). Here the handler only notes the signal; after
    every training batch the ranks agree on it (one all-reduce) and all stop there (a signal
    during validation is acted on after it). With one process Lightning's handler stays."""

    def __init__(self):
        self.signalled = False

    def setup(self, trainer: L.Trainer, pl_module, stage: str) -> None:
        if trainer.world_size > 1:  # before Lightning registers its handlers, in fit
            trainer._signal_connector._sigterm_notifier_fn = self._note

    def _note(self, signum, frame) -> None:
        self.signalled = True

    def on_train_batch_end(self, trainer: L.Trainer, *args) -> None:
        if trainer.world_size > 1:
            flag = torch.tensor([float(self.signalled)], device=trainer.strategy.root_device)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            if flag.item() > 0:  # Lightning stops every rank at the end of this batch
                trainer._signal_connector.received_sigterm = True
