"""What changes over a training run: the learning rate (``optim.schedule``) and the KL weight
(``optim.kl_anneal_*``), as the later anchors trained (the paper used neither).

- ``cosine``: from lr down to ``optim.lr_floor`` along half a cosine over
  ``optim.schedule_length`` intervals (Dai et al. 2019);
- ``exponential``: lr x ``optim.decay_rate`` per interval after ``optim.decay_after`` (SRNN's
  recipe, in epochs);
- either after a linear warm-up over ``optim.warmup`` intervals (lr x n / warmup);
- an interval (``optim.schedule_interval``) is an optimiser step or an epoch.

The learning rate is a multiplier of lr in a torch LambdaLR, handed to Lightning in its
documented dict form (``lr_scheduler_config``); it is saved in every checkpoint with the
optimiser, so that a resumed run continues the curve.

KL annealing weighs the KL term by ``kl_anneal_start`` rising linearly to 1 over
``kl_anneal_steps`` steps (Z-forcing / Dai et al.: 0.2, +5e-5 per step, i.e. 16,000 steps;
SRNN: from 0 over 20 epochs); the start 0 is the plain warm-up the option always had.
"""

from __future__ import annotations

import math

import torch

SCHEDULES = ("none", "cosine", "exponential")  # optim.schedule (config.py lists them too)
INTERVALS = ("step", "epoch")  # optim.schedule_interval


def lr_factor(n: int, optim, length: int | None) -> float:
    """The learning rate over lr at interval ``n`` (0 for the first), for ``optim`` (the optim
    config section); ``length`` is cosine's number of intervals to the floor."""
    warm = min(1.0, (n + 1) / optim.warmup) if optim.warmup > 0 else 1.0
    if optim.schedule == "cosine":
        floor = optim.lr_floor / optim.lr if optim.lr > 0 else 0.0
        span = max(1, length - optim.warmup)
        progress = min(1.0, max(0, n - optim.warmup) / span)
        return warm * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))
    if optim.schedule == "exponential":
        return warm * optim.decay_rate ** max(0, n - optim.decay_after)
    return warm


def schedule_length(optim, trainer) -> int | None:
    """Cosine's intervals to the floor: ``optim.schedule_length``, else the run's length in
    the schedule's unit (max_epochs, or the steps Lightning estimates the run will take)."""
    if optim.schedule != "cosine":
        return None
    if optim.schedule_length is not None:
        return optim.schedule_length
    if optim.schedule_interval == "epoch":
        length = trainer.max_epochs
    else:
        length = trainer.estimated_stepping_batches
    if length is None or not math.isfinite(length) or length < 1:
        from .config import ConfigError

        raise ConfigError(
            "optim.schedule_length: cosine needs a length, and this run sets no finite "
            f"trainer.max_{optim.schedule_interval}s; set optim.schedule_length"
        )
    return int(length)


def lr_scheduler_config(optimiser: torch.optim.Optimizer, optim, trainer) -> dict | None:
    """Lightning's lr_scheduler dict for ``optim.schedule``; None for ``none`` without
    warm-up (the paper's constant lr)."""
    if optim.schedule == "none" and optim.warmup == 0:
        return None
    length = schedule_length(optim, trainer)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda n: lr_factor(n, optim, length))
    return {"scheduler": scheduler, "interval": optim.schedule_interval, "frequency": 1}


def kl_weight(step: int, start: float, steps: int) -> float:
    """The KL term's weight at optimiser step ``step`` (0 for the first): ``start`` rising
    linearly to 1 over ``steps`` steps; 1 throughout when ``steps`` is 0 (the paper)."""
    if steps <= 0:
        return 1.0
    return start + (1.0 - start) * min(1.0, (step + 1) / steps)
