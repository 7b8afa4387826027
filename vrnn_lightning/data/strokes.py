"""Pen trajectories <-> the model's steps (pen, dx, dy), as the paper's IAM-OnDB code does.

A trajectory is an (N, 3) array of points (x, y, lifted), ``lifted`` = 1 when the pen leaves
the surface after this point (the last point of every stroke). Its steps drop the first point:
step t = (lifted_t, x_t - x_{t-1}, y_t - y_{t-1}). Sources whose y axis grows downwards (IAM
XML, screen coordinates) are flipped so that every corpus has y growing upwards.
"""

from __future__ import annotations

import numpy as np

from vrnn_lightning.data.source import BadInput

# Pen offsets beyond this many units between two points are corrupt data (tablets and
# whiteboards report at most tens of thousands of units across; GW online: <= 1,200,
# IAM-OnDB: < 10,000), and one of them would set the statistics of a whole corpus
MAX_OFFSET = 1e5


def points_to_steps(points, flip_y: bool = False, name: str = "trajectory") -> np.ndarray:
    """(N, 3) points (x, y, lifted) -> (N - 1, 3) float32 steps (pen, dx, dy).

    Raises BadInput (naming ``name``) unless there are at least 2 finite points with a pen
    bit of 0 or 1 and no offset larger than ``MAX_OFFSET``.
    """
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise BadInput(f"{name}: expected points (x, y, pen), got an array of shape {pts.shape}")
    if len(pts) < 2:
        raise BadInput(f"{name}: {len(pts)} point(s); a trajectory needs at least 2")
    if not np.isfinite(pts).all():
        raise BadInput(f"{name}: non-finite coordinates")
    if not np.isin(pts[:, 2], (0.0, 1.0)).all():
        raise BadInput(f"{name}: pen values other than 0 and 1")
    offsets = np.diff(pts[:, :2], axis=0)
    largest = float(np.abs(offsets).max())
    if largest > MAX_OFFSET:
        raise BadInput(
            f"{name}: a pen offset of {largest:.3g} between two points "
            f"(at most {MAX_OFFSET:.0e} is accepted)"
        )
    steps = np.empty((len(pts) - 1, 3), dtype=np.float32)
    steps[:, 0] = pts[1:, 2]
    steps[:, 1:] = offsets
    if flip_y:
        steps[:, 2] *= -1
    return steps


def steps_to_points(steps, origin=(0.0, 0.0), flip_y: bool = False) -> np.ndarray:
    """(T, 3) steps (pen, dx, dy) -> (T + 1, 3) absolute points (x, y, lifted) from ``origin``.

    The inverse of ``points_to_steps`` up to the dropped first point's position (``origin``)
    and pen bit (0). ``flip_y`` undoes the same flag of ``points_to_steps``.
    """
    steps = np.asarray(steps, dtype=np.float64)
    if steps.ndim != 2 or steps.shape[1] != 3:
        raise ValueError(f"expected steps of shape (T, 3), got {steps.shape}")
    points = np.zeros((len(steps) + 1, 3))
    points[0, :2] = origin
    delta = steps[:, 1:] * np.array([1.0, -1.0 if flip_y else 1.0])
    points[1:, :2] = points[0, :2] + np.cumsum(delta, axis=0)
    points[1:, 2] = steps[:, 0] > 0.5  # sampled pen values may be probabilities
    return points


def split_strokes(points) -> list[np.ndarray]:
    """(N, 3) points -> the strokes to draw: a list of (k, 2) arrays of (x, y), each ending at a
    point whose pen is lifted after it (the last stroke may end without a lift)."""
    points = np.asarray(points)
    ends = np.flatnonzero(points[:, 2] > 0.5) + 1
    return [s[:, :2] for s in np.split(points, ends) if len(s)]
