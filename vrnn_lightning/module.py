"""VRNNModule: the training loop's view of the model (loss, optimiser, constraints, logging).

Nothing here knows about file formats; the batches are ``{"x": (B, T, D), "mask": (B, T)}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, is_dataclass

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info
from omegaconf import DictConfig, OmegaConf
from torchmetrics import MeanMetric, SumMetric

from . import estimators, schedule
from .config import (
    ConfigError,
    EvalConfig,
    ModelConfig,
    OptimConfig,
    check_values,
    merge_checked,
)
from .family import model_from_config
from .model import VRNN, StepTerms
from .tbptt import CarriedState


def clip_threshold(optim, data, world_size: int = 1) -> float | None:
    """The gradient-norm threshold equivalent to the original's clipping (config.py,
    optim.grad_clip_scale); its batch is the global one (DDP averages the ranks' gradients).
    None: no clipping."""
    if not optim.grad_clip or optim.grad_clip <= 0:
        return None
    batch = data.batch_size * world_size
    if optim.grad_clip_scale == "batch_frames":
        return float(optim.grad_clip * batch * data.seq_len)
    return float(optim.grad_clip * (batch if optim.grad_clip_scale == "batch" else 1))


class NonFiniteLossError(RuntimeError):
    """Too many consecutive training steps had a non-finite loss."""


class VRNNModule(L.LightningModule):
    """Minus the ELBO, summed over each sequence's frames and averaged over sequences; or minus
    another bound of log p(x) (``optim.objective``):

    - ``iwae``: IWAE(K) of each sequence, K = ``optim.particles`` samples in one batch;
    - ``fivo``: SMC(K)'s bound (Maddison et al. 2017), a particle filter with K particles that
      resamples (systematic) when the effective sample size falls below K/2. Its gradient
      drops the resampling's score-function terms, as the FIVO paper does: the ancestor
      draws are treated as constants, gradients flow through the weights and along the
      chosen ancestors' states (a biased but low-variance gradient of the bound).
      It runs ``VRNN.step`` one step at a time (resampling acts between steps), so a
      training step is slower than the fused ELBO's.

    Validation always reports the ELBO (``val/elbo``) and adds the objective's bound
    (``val/iwae`` or ``val/fivo``).

    ``model`` and ``optim`` are the config sections of those names (mappings or the dataclasses;
    missing keys take the defaults, an unknown key is a ConfigError); ``observation`` and
    ``x_dim`` say what x_t is; ``batch_size`` and ``seq_len`` are the training batch size
    and window length (optim.grad_clip_scale sets the clip threshold from them, and carried
    TBPTT state is one row per stream): the DataModule knows them all, and
    ``VRNNModule.for_data(datamodule, ...)`` reads them from it. ``seed`` seeds the latent
    noise. All of it is saved in every checkpoint, so a checkpoint alone rebuilds the module;
    ``run_config`` (the whole run config, for vrnn-eval and vrnn-sample) is saved beside it.
    """

    def __init__(
        self,
        model: Mapping | ModelConfig | None = None,
        optim: Mapping | OptimConfig | None = None,
        *,
        observation: str,
        x_dim: int,
        batch_size: int,
        seq_len: int | None = None,
        seed: int = 0,
        run_config: Mapping | None = None,
    ):
        super().__init__()
        self.model_cfg: DictConfig = section(ModelConfig, model, "model")
        self.optim_cfg: DictConfig = section(OptimConfig, optim, "optim")
        self.observation, self.x_dim = observation, int(x_dim)
        self.batch_size, self.seed = int(batch_size), int(seed)
        self.seq_len = None if seq_len is None else int(seq_len)
        if self.seq_len is None and self.optim_cfg.grad_clip_scale == "batch_frames":
            raise ConfigError("optim.grad_clip_scale: batch_frames needs the module's seq_len")
        self.run_config = None if run_config is None else OmegaConf.create(dict(run_config))
        self.command: str | None = None  # the vrnn-fit command line, for the model card
        # plain containers, so that a checkpoint holds no class of this package
        self.save_hyperparameters(
            {
                "model": OmegaConf.to_container(self.model_cfg),
                "optim": OmegaConf.to_container(self.optim_cfg),
                "observation": observation,
                "x_dim": self.x_dim,
                "batch_size": self.batch_size,
                "seq_len": self.seq_len,
                "seed": self.seed,
                "run_config": None if run_config is None else _plain(run_config),
            }
        )
        self.model: VRNN = model_from_config(self.model_cfg, observation, self.x_dim)
        self.carried = CarriedState(self.optim_cfg.tbptt_reset_every)
        self.nonfinite_in_a_row = 0
        self.nonfinite_total = 0
        self.finite_since_step = 0  # finite batches since the last optimiser step
        self._generator: torch.Generator | None = None
        self._epoch_seed = self.seed
        # validation sums, weighted so that DDP and uneven batches reduce exactly
        self.val_elbo = MeanMetric()
        self.val_elbo_per_frame = MeanMetric()
        self.val_kl = MeanMetric()
        self.val_log_px = MeanMetric()
        self.val_objective = MeanMetric()  # the training bound, when it is not the ELBO
        self.val_nonfinite = SumMetric()  # sequences left out of the means: a non-finite ELBO

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path, *args, weights_only: bool = True, **kwargs):
        """Lightning's, reading the file with ``torch.load(weights_only=True)`` unless told
        otherwise: a checkpoint never runs code while it loads, whatever torch's default."""
        return super().load_from_checkpoint(
            checkpoint_path, *args, weights_only=weights_only, **kwargs
        )

    @classmethod
    def for_data(
        cls,
        datamodule,
        model: Mapping | ModelConfig | None = None,
        optim: Mapping | OptimConfig | None = None,
        **kwargs,
    ) -> VRNNModule:
        """A module for the data of ``datamodule`` (a FramesDataModule): its observation kind,
        x_dim and batch size."""
        return cls(
            model,
            optim,
            observation=datamodule.observation,
            x_dim=datamodule.x_dim,
            batch_size=datamodule.cfg.batch_size,
            seq_len=datamodule.cfg.seq_len,
            **kwargs,
        )

    # ---- the objective ------------------------------------------------------------------
    def kl_weight(self) -> float:
        opt = self.optim_cfg
        return schedule.kl_weight(self.global_step, opt.kl_anneal_start, opt.kl_anneal_steps)

    def loss(self, terms: StepTerms, mask: torch.Tensor) -> torch.Tensor:
        """Minus the ELBO (KL annealed and floored by free bits when those options are on),
        summed over each sequence's frames, averaged over sequences."""
        kl = terms.kl
        if self.optim_cfg.free_bits > 0 and terms.kl_per_dim is not None:
            # free bits: KL below the floor (per z dim and step) is not penalised
            floor = torch.full_like(terms.kl_per_dim, self.optim_cfg.free_bits)
            kl = torch.where(mask, torch.maximum(terms.kl_per_dim, floor).sum(-1), 0.0)
        return -(terms.log_px - self.kl_weight() * kl).sum(1).mean()

    @property
    def objective(self) -> str:
        # a checkpoint from before optim.objective existed gets the default: the ELBO
        return self.optim_cfg.objective

    def bound(
        self, x: torch.Tensor, mask: torch.Tensor, max_rows: int | None = None
    ) -> torch.Tensor:
        """The training objective's bound of each sequence (B,) for iwae and fivo, scored
        ``max_rows`` rows at a time (validation: within eval.memory_gb, as vrnn-eval)."""
        scoring = estimators.Scoring(
            self.model, x, mask, self.optim_cfg.particles, generator=self._noise(x.device),
            max_rows=max_rows,
        )  # fmt: skip
        name = "iwae" if self.objective == "iwae" else "smc"  # fivo: SMC's bound
        return estimators.estimate(scoring, name).per_sequence

    def _validation_rows(self, steps: int) -> int | None:
        """The rows of ``steps`` steps that eval.memory_gb holds (its default for a module
        without a run config, or whose run config predates the key)."""
        default = EvalConfig.memory_gb
        setting = (
            default
            if self.run_config is None
            else OmegaConf.select(self.run_config, "eval.memory_gb", default=default)
        )
        size, k = estimators.step_bytes(self.model), self.optim_cfg.particles
        budget = estimators.memory_budget_gb(setting, self.device)
        return estimators.rows_within(size, steps, budget, k)

    def training_step(self, batch, batch_idx):
        x, mask = batch["x"], batch["mask"]
        if self.objective != "elbo":
            return self._bound_training_step(x, mask)
        state = self.carried.initial(batch_idx, x.shape[0], x.device)
        terms = self.model(x, mask, state=state, generator=self._noise(x.device))
        loss = self.loss(terms, mask)
        elbo = (terms.log_px - terms.kl).sum(1)  # the true bound, logged

        if not self._all_finite(loss):
            self.carried.forget()
            return self._skip_nonfinite()
        self.carried.keep(terms.final_state, batch_idx)
        self._count_finite()
        batch_size = x.shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=batch_size)
        if self._logs_written():
            metrics = {
                "train/elbo": elbo.mean(),
                "train/elbo_per_frame": elbo.sum() / mask.sum(),
                "train/kl": terms.kl.sum(1).mean(),
                "train/log_px": terms.log_px.sum(1).mean(),
                "train/kl_weight": self.kl_weight(),
            }
            self.log_dict(metrics, batch_size=batch_size)
        return loss

    def _attached_trainer(self) -> L.Trainer | None:
        """The Trainer fitting this module, or None (the module used on its own)."""
        try:
            return self.trainer
        except RuntimeError:  # Lightning: "... is not attached to a `Trainer`"
            return None

    def _logs_written(self) -> bool:
        """Whether this step's metrics reach the loggers (every log_every_n_steps optimiser
        steps, Lightning's rule): each self.log costs about 1 ms on a CPU, worth skipping on
        the steps nobody sees. tests/test_module.py holds it against the CSV."""
        trainer = self._attached_trainer()
        if trainer is None:
            return True
        return (trainer.global_step + 1) % trainer.log_every_n_steps == 0 or trainer.should_stop

    def _bound_training_step(self, x: torch.Tensor, mask: torch.Tensor):
        bound = self.bound(x, mask)
        loss = -bound.mean()
        if not self._all_finite(loss):
            return self._skip_nonfinite()
        self._count_finite()
        objective, batch_size = self.objective, x.shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=batch_size)
        self.log(f"train/{objective}", bound.mean(), batch_size=batch_size)
        self.log(f"train/{objective}_per_frame", bound.sum() / mask.sum(), batch_size=batch_size)
        return loss

    # ---- a non-finite loss: the step skipped by every rank together ------------------------
    # Under DDP every rank must run backward (DDP all-reduces the gradients there) and take
    # the same optimiser step; Lightning refuses a training_step that returns None. So the
    # ranks agree on the verdict (one all-reduce), a skipped step backpropagates a zero loss
    # through every parameter, and its gradients are dropped before the optimiser step:
    # torch's optimisers leave a parameter without a gradient untouched, moments included.
    def _all_finite(self, loss: torch.Tensor) -> bool:
        bad = (~torch.isfinite(loss.detach())).float()
        trainer = self._attached_trainer()
        if trainer is not None and trainer.world_size > 1:
            bad = trainer.strategy.reduce(bad, reduce_op="max")
        return not bool(bad)

    def _count_finite(self) -> None:
        self.nonfinite_in_a_row = 0
        self.finite_since_step += 1

    def _skip_nonfinite(self) -> torch.Tensor:
        self.nonfinite_in_a_row += 1
        self.nonfinite_total += 1
        self.log("train/nonfinite_steps", float(self.nonfinite_total))
        limit = self.optim_cfg.max_nonfinite_steps
        total = self.nonfinite_total
        if total <= 10 or total % 100 == 0:  # said, not only a CSV column; a flood is thinned
            rank_zero_info(
                f"step {self.global_step}: non-finite loss, step skipped "
                f"({self.nonfinite_in_a_row} in a row, {total} in all; training stops after "
                f"{limit} in a row: optim.max_nonfinite_steps)"
            )
        if self.nonfinite_in_a_row >= limit:
            raise NonFiniteLossError(
                f"{self.nonfinite_in_a_row} consecutive training steps had a non-finite loss "
                f"(step {self.global_step}); training stopped. Lower optim.lr, keep "
                "optim.grad_clip on, or try trainer.precision=32-true."
            )
        return torch.stack([p.sum() for p in self.parameters()]).sum() * 0.0

    def on_before_optimizer_step(self, optimizer) -> None:
        if self.finite_since_step == 0:  # every batch since the last step was skipped
            optimizer.zero_grad(set_to_none=True)
        self.finite_since_step = 0

    # ---- validation: always the true, un-annealed ELBO -----------------------------------
    def validation_step(self, batch, batch_idx):
        x, mask = batch["x"], batch["mask"]
        terms = self.model(x, mask, generator=self._noise(x.device))
        elbo = (terms.log_px - terms.kl).sum(1)
        # a sequence with a non-finite ELBO is counted and left out: one would make the mean
        # NaN or -inf, and with it val/elbo, the best checkpoint and early stopping
        ok = torch.isfinite(elbo)
        self.val_nonfinite.update((~ok).sum().float())
        n_frames = mask.sum(1).float()[ok]
        if ok.any():
            self.val_elbo.update(elbo[ok])
            self.val_elbo_per_frame.update(elbo[ok] / n_frames, weight=n_frames)
            self.val_kl.update(terms.kl.sum(1)[ok])
            self.val_log_px.update(terms.log_px.sum(1)[ok])
        if self.objective != "elbo":  # e.g. K x 16 whole TIMIT utterances: in parts
            bound = self.bound(x, mask, self._validation_rows(x.shape[1]))
            self.val_objective.update(bound[torch.isfinite(bound)])

    def on_validation_epoch_end(self):
        self.log("val/elbo", self.val_elbo.compute(), prog_bar=True)
        self.log("val/elbo_per_frame", self.val_elbo_per_frame.compute())
        self.log("val/kl", self.val_kl.compute())
        self.log("val/log_px", self.val_log_px.compute())
        if self.objective != "elbo":
            self.log(f"val/{self.objective}", self.val_objective.compute())
        dropped = int(self.val_nonfinite.compute())
        # already every rank's sum (a SumMetric); sync_dist's mean of equal values keeps it and
        # tells Lightning it is the same on every rank (else it warns under DDP)
        self.log("val/nonfinite_sequences", float(dropped), sync_dist=True)
        trainer = self._attached_trainer()
        if dropped and not (trainer is not None and trainer.sanity_checking):
            rank_zero_info(
                f"validation at step {self.global_step}: {dropped} sequence(s) with a "
                "non-finite ELBO were left out of val/elbo (val/nonfinite_sequences)"
            )
        for metric in (self.val_elbo, self.val_elbo_per_frame, self.val_kl, self.val_log_px):
            metric.reset()
        self.val_objective.reset()
        self.val_nonfinite.reset()

    # ---- optimisation ------------------------------------------------------------------
    def configure_optimizers(self):
        opt = self.optim_cfg
        # fused: one kernel over all parameters (on a CPU ten times the per-tensor loop's
        # speed); not under 16-bit AMP, whose GradScaler must unscale before clipping
        fused = not str(self.trainer.precision).startswith("16")
        adam = torch.optim.Adam(
            self.parameters(), lr=opt.lr, betas=tuple(opt.betas), eps=opt.eps, fused=fused
        )
        lr_scheduler = schedule.lr_scheduler_config(adam, opt, self.trainer)  # optim.schedule
        return adam if lr_scheduler is None else {"optimizer": adam, "lr_scheduler": lr_scheduler}

    def configure_gradient_clipping(
        self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None
    ):
        threshold = clip_threshold(self.optim_cfg, self, self.trainer.world_size)
        if threshold:
            # clipped here directly: Lightning's own clip_gradients refuses fused optimisers;
            # under 16-bit AMP the gradients are already unscaled at this point
            torch.nn.utils.clip_grad_norm_(self.parameters(), threshold)

    def optimizer_step(self, *args, **kwargs):
        super().optimizer_step(*args, **kwargs)
        if self.optim_cfg.max_norm:
            self.model.apply_max_norm(self.optim_cfg.max_norm)

    # ---- truncated BPTT: every rank's carried state in the checkpoint ---------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        self.describe_into(checkpoint)
        if self.carried.enabled:
            zeros = torch.zeros(self.batch_size, self.model_cfg.h_dim, device=self.device)
            checkpoint["carried_state"] = self.carried.state_dict(
                self.all_gather, self.trainer.world_size, zeros
            )

    def describe_into(self, checkpoint: dict) -> None:
        """Under any Trainer (vrnn-fit's, a notebook's), a checkpoint says what x_t is, how the
        data was normalised, the run config and metrics (vrnn_lightning.checkpoint), when the
        data is a FramesDataModule; ``self.command`` (vrnn-fit sets it) goes to the model card."""
        from .checkpoint_format import DESCRIPTION_KEY, describe_training

        trainer = self._attached_trainer()
        datamodule = trainer.datamodule if trainer is not None else None
        if not hasattr(datamodule, "store"):
            return
        config = (
            OmegaConf.to_container(self.run_config, resolve=True)
            if self.run_config is not None
            else {
                "model": OmegaConf.to_container(self.model_cfg),
                "optim": OmegaConf.to_container(self.optim_cfg),
                "data": asdict(datamodule.cfg),
                "seed": self.seed,
            }
        )
        checkpoint[DESCRIPTION_KEY] = describe_training(
            self.trainer, self.model, config, self.command
        )

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if self.carried.enabled and "carried_state" in checkpoint:
            trainer = self._attached_trainer()
            world = trainer.world_size if trainer is not None else 1
            self.carried.load_state_dict(checkpoint["carried_state"], self.global_rank, world)

    # ---- the latent noise ----------------------------------------------------------------
    # z's noise comes from the module's own generator, reseeded for every training batch from
    # its place (epoch, batch, rank) and at the start of every validation: a run resumed even
    # in mid-epoch draws exactly what an uninterrupted one would, and every validation scores
    # the same noise (val/elbo moves only when the model does).
    def _noise(self, device: torch.device) -> torch.Generator:
        if self._generator is None or self._generator.device != device:
            self._generator = torch.Generator(device)
            self._generator.manual_seed(self._epoch_seed)
        return self._generator

    def _reseed(self, seed: int) -> None:
        self._epoch_seed = seed
        self._generator = None

    def on_train_batch_start(self, batch, batch_idx):
        place = (self.seed * 100_003 + 2 * self.current_epoch) * 1_000_003 + batch_idx
        self._reseed((place * 1009 + self.global_rank) % 2**63)

    def on_validation_epoch_start(self):
        self._reseed(self.seed * 100_003 + 1 + 1_000_000 * self.global_rank)


def section(schema: type, values, name: str) -> DictConfig:
    """A config section (``model``, ``optim``) from a mapping or its dataclass, over the
    schema's defaults; ConfigError naming ``<name>.<key>`` for an unknown key or a wrong type."""
    if values is None:
        values = {}
    elif is_dataclass(values):
        values = asdict(values)
    elif not isinstance(values, Mapping):
        raise ConfigError(f"{name}: expected a mapping of {name}.* settings, got {values!r}")
    schema_cfg = OmegaConf.create({name: OmegaConf.structured(schema)})
    cfg = merge_checked(schema_cfg, {name: _plain(values)}, f"the {name} settings")
    check_values(cfg)
    return cfg[name]


def _plain(values: Mapping) -> dict:
    return OmegaConf.to_container(OmegaConf.create(dict(values)), resolve=True)
