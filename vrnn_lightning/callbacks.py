"""Training callbacks: samples written (and logged to W&B) as the model trains, the parameter
summary and the progress bar. The description every checkpoint carries is the module's
(VRNNModule.describe_into); how a run survives being stopped (last.ckpt, signals, resuming)
is vrnn_lightning/preemption/."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelSummary, RichProgressBar
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_warn
from lightning.pytorch.utilities.model_summary.model_summary import (
    get_formatted_model_size,
    get_human_readable_count,
)

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
