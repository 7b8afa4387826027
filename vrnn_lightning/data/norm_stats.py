"""Given normalisation statistics (``data.norm_stats: FILE``) instead of computing them.

Table 1's numbers depend on the normalisation (the log-densities are in the normalised
space), so matching another work's numbers needs its exact statistics, e.g. the
original release's ``blizzard_unseg_tbptt_normal.npz``. Accepted files:

- ``.npz`` with ``X_mean`` and ``X_std`` (the original release's names) or ``mean`` and ``std``;
- ``.json`` with ``{"mean": m, "std": s}``.

Each value is one scalar (a size-1 array is fine): this project normalises with one scalar
pair, as the original did. The values are in the units of the stored frames: for 16-bit
audio int16 sample values (as the original read its WAVs), for strokes (dx, dy) offsets. A
file may add ``amplitude_scale`` (the sample value of amplitude 1.0 in its units: 32768 for
int16 values, 1 for floats in [-1, 1], e.g. librosa's) and is then converted to the store's
units.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from vrnn_lightning.config import ConfigError

NAMES = (("X_mean", "X_std"), ("mean", "std"))


def _scalar(value, path: Path, key: str) -> float:
    arr = np.asarray(value, dtype=np.float64)
    if arr.size != 1:
        raise ConfigError(
            f"data.norm_stats: {path}: '{key}' has {arr.size} values; one scalar is expected"
        )
    return float(arr.reshape(()))


def load_norm_stats(path: str | Path, amplitude_scale: float = 1.0) -> dict:
    """{"mean", "std"} from ``path``, in the units of a store whose amplitude 1.0 is
    ``amplitude_scale``. Raises ConfigError naming the file when it cannot be used."""
    path = Path(path)
    try:
        if path.suffix == ".json":
            raw = json.loads(path.read_text())
            if not isinstance(raw, dict):
                raise ValueError("not a JSON object")
        elif path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as f:
                raw = {k: f[k] for k in f.files}
        else:
            raise ValueError("not a .npz or .json file")
    except (OSError, ValueError, UnicodeDecodeError) as err:
        raise ConfigError(f"data.norm_stats: cannot read {path}: {err}") from None
    names = next((pair for pair in NAMES if all(k in raw for k in pair)), None)
    if names is None:
        raise ConfigError(
            f"data.norm_stats: {path} has no statistics: expected X_mean and X_std, or mean "
            f"and std; it has {', '.join(sorted(raw)) or 'nothing'}"
        )
    mean, std = (_scalar(raw[k], path, k) for k in names)
    if "amplitude_scale" in raw:
        factor = amplitude_scale / _scalar(raw["amplitude_scale"], path, "amplitude_scale")
        mean, std = mean * factor, std * factor
    if not (math.isfinite(mean) and math.isfinite(std) and std > 0):
        raise ConfigError(
            f"data.norm_stats: {path}: mean {mean} and std {std} must be finite, std > 0"
        )
    return {"mean": mean, "std": std}
