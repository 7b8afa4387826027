"""Known noise from the libraries, silenced one message at a time (never a whole category).

- torch's FutureWarning that ``isinstance(treespec, LeafSpec)`` is deprecated: raised inside
  Lightning's own _pytree helper on every run, about Lightning's code, not ours.
- Lightning's two "Tip: ... try installing litlogger / litmodels" lines (advertising), and its
  "GPU/TPU/HPU available: False" lines (no such hardware: nothing to say; a GPU that is there
  but unused is still reported).

- When resuming (and only then: vrnn-fit refuses a run folder that already holds another
  run's checkpoints), ModelCheckpoint's "Checkpoint directory ... exists and is not empty":
  the folder holds the run's own checkpoints.

Everything else Lightning, torch or W&B says still shows.
"""

from __future__ import annotations

import logging
import warnings

NOISE = ("💡 Tip:", "GPU available: False", "TPU available: False", "HPU available: False")


class _DropTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(NOISE)


def quiet_known_noise(resuming: bool = False) -> None:
    if resuming:
        warnings.filterwarnings(
            "ignore", r"Checkpoint directory .* exists and is not empty", UserWarning
        )
    warnings.filterwarnings(
        "ignore",
        message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
        category=FutureWarning,
    )
    for name in ("lightning.pytorch.utilities.rank_zero", "pytorch_lightning.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropTips) for f in logger.filters):
            logger.addFilter(_DropTips())
