"""Checkpoints written atomically: to a temporary name in the checkpoint's own folder, then
renamed when complete.

Lightning's TorchCheckpointIO writes through an fsspec transaction whose temporary file is in
the system's temporary folder; the final move to the checkpoint folder is then a copy across
file systems, and a copy cut short by a full disk left a truncated ``best-*.ckpt`` that looked
finished (the sweep report picked it and failed). A rename within one folder is atomic: the
checkpoint is there complete, or the previous one is still there untouched.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from .data.store import DiskFull


class AtomicCheckpointIO(TorchCheckpointIO):
    """TorchCheckpointIO whose save is write-to-temporary, fsync, rename (local paths); a full
    disk is a DiskFull error (vrnn-fit: exit 2 with its message)."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options=None
    ) -> None:
        if storage_options is not None or "://" in str(path):  # remote: Lightning's own way
            return super().save_checkpoint(checkpoint, path, storage_options)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            with open(tmp, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as err:
            if err.errno != errno.ENOSPC:
                raise
            raise DiskFull(
                f"{path.parent}: the disk is full: checkpoint {path.name} was not written "
                "(the checkpoints already there are intact); free some space, then resume "
                "with ckpt_path=last"
            ) from None
        finally:
            tmp.unlink(missing_ok=True)
