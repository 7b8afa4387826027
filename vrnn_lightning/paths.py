"""Where a command will write, checked before it works: a command that cannot start (or
cannot finish writing) leaves no new folder or file behind."""

from __future__ import annotations

import os
from pathlib import Path

from .config import ConfigError


def check_creatable(path: str | Path, what: str, folder: bool = False) -> Path:
    """ConfigError naming ``what`` (e.g. "--out") unless ``path`` can be made: a file (or,
    with ``folder``, a folder) there, or under its nearest existing parent, which must be a
    writable folder. Nothing is created; the caller makes the folders when it writes."""
    path = Path(path)
    if not folder and path.is_dir():
        raise ConfigError(f"{what}: {path} is a folder; give a file name, e.g. {path}/eval.json")
    if folder and path.exists() and not path.is_dir():
        raise ConfigError(f"{what}: {path} is a file; give a folder")
    parent = path if folder and path.is_dir() else path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigError(f"{what}: cannot write {path} ({parent} is not a folder)")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{what}: cannot write {path} ({parent} is not writable)")
    return path
