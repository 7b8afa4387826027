"""Where a run starts: afresh, or from the run folder's last.ckpt (``ckpt_path``).

``ckpt_path=auto`` (the default) resumes ``<out_dir>/checkpoints/last.ckpt`` when the run
folder has one and the run has not finished, and starts afresh in an empty folder: the same
command resumes a preempted or requeued run, with no extra argument. It never trains a
finished run again (``ckpt_path=last`` does: to train it further with a higher max_steps),
nor writes over a folder whose checkpoints it would not resume. ``ckpt_path=last`` resumes
last.ckpt whenever there is one; ``ckpt_path=null`` only starts afresh; a path resumes that
checkpoint. A run that reached its end leaves ``finished.json`` in its folder.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch
from omegaconf import DictConfig

from ..config import ConfigError

LAST_CHECKPOINT = "last.ckpt"  # what ckpt_path=auto and ckpt_path=last resume
FINISHED = "finished.json"  # written when a run reaches its end


def last_checkpoint(out_dir: str | Path) -> Path:
    return Path(out_dir) / "checkpoints" / LAST_CHECKPOINT


def finished(out_dir: str | Path) -> dict | None:
    """What ``finished.json`` says ({"step", "time"}), or None: the run has not finished."""
    path = Path(out_dir) / FINISHED
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def mark_finished(out_dir: str | Path, step: int) -> None:
    path = Path(out_dir) / FINISHED
    tmp = path.with_name(f".{FINISHED}.tmp")
    tmp.write_text(json.dumps({"step": int(step), "time": time.strftime("%Y-%m-%dT%H:%M:%S")}))
    tmp.replace(path)


def unmark_finished(out_dir: str | Path) -> None:
    """A finished run trained further is no longer finished until it ends again."""
    (Path(out_dir) / FINISHED).unlink(missing_ok=True)


def resolve_ckpt_path(cfg: DictConfig) -> str | None:
    """The checkpoint this run resumes, or None to start afresh; ConfigError when neither is
    safe (see the module's docstring)."""
    checkpoints = Path(cfg.out_dir) / "checkpoints"
    last = checkpoints / LAST_CHECKPOINT
    any_checkpoint = checkpoints.is_dir() and any(checkpoints.glob("*.ckpt"))
    mode = cfg.ckpt_path
    if mode in (None, ""):
        if any_checkpoint:
            raise ConfigError(
                f"out_dir: {cfg.out_dir} already holds a run's checkpoints and ckpt_path=null "
                "only starts afresh; resume it with ckpt_path=auto, or start a new run with "
                "another name=... or out_dir=..."
            )
        return None
    if mode == "auto":
        done = finished(cfg.out_dir)
        if done is not None:
            raise ConfigError(
                f"out_dir: {cfg.out_dir} holds a run that finished at step {done.get('step')} "
                f"({Path(cfg.out_dir) / FINISHED}); to train it further, ckpt_path=last with a "
                "higher trainer.max_steps or trainer.max_epochs; to start a new run, another "
                "name=... or out_dir=..."
            )
        if last.is_file():
            print(f"vrnn-fit: resuming {cfg.out_dir} from {last}", file=sys.stderr)
            return str(last)
        if any_checkpoint:  # e.g. a best checkpoint without last.ckpt: never overwrite it
            raise ConfigError(
                f"out_dir: {cfg.out_dir} holds checkpoints but no {LAST_CHECKPOINT} to resume; "
                "resume one of them with ckpt_path=PATH, or start a new run with another "
                "name=... or out_dir=..."
            )
        return None
    if mode == "last":
        if not last.is_file():
            print(f"vrnn-fit: no {last} yet; starting from scratch", file=sys.stderr)
            return None
        return str(last)
    if not Path(mode).is_file():
        raise ConfigError(f"ckpt_path: checkpoint {mode} does not exist")
    return mode


def check_resume(cfg: DictConfig, ckpt_path: str) -> None:
    """ConfigError naming the first model key that differs from the checkpoint being resumed,
    before anything is written: resuming with another model.h_dim wrote the new config.yaml
    beside the old checkpoints, then failed with a size-mismatch traceback."""
    from ..checkpoint_format import module_arguments

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
