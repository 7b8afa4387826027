"""Figures drawn in a helper process, so that a long training run's memory stays flat.

Rendering a figure allocates and frees tens of MB of C buffers (the Agg canvas, FreeType
glyphs). Interleaved with a training loop's own allocations, the C heap fragmented and the
training process grew by about 2 MB at every validation that wrote samples (nothing held the
memory: Python saw no new object, and malloc_trim gave little back). In a process of its own,
drawing reaches a steady size after a few dozen figures and the training process does not
grow at all.

The helper is ``python -m vrnn_lightning.figure_worker``: it reads pickled
(name, args, kwargs) jobs from its standard input and answers each with a pickled None (done)
or an error message. Only this package's own processes talk over that pipe.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import traceback
from pathlib import Path

from . import plots


def _draw(name: str, args: tuple, kwargs: dict) -> None:
    getattr(plots, name)(*args, **kwargs)  # saves its PNG; the Figure is dropped here


def draw_here(name: str, *args, **kwargs) -> None:
    """Draw in this process (one-off commands: vrnn-sample, tests)."""
    _draw(name, args, kwargs)


class FigureWorker:
    """``worker(name, *args, **kwargs)`` calls ``plots.<name>`` in one long-lived helper
    process (started on first use, restarted if it died) and returns when the PNG is
    written; an error there is raised here. ``close()`` ends the process."""

    def __init__(self):
        self._proc: subprocess.Popen | None = None

    def __call__(self, name: str, *args, **kwargs) -> None:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = _start()
        try:
            pickle.dump((name, args, kwargs), self._proc.stdin)
            self._proc.stdin.flush()
            error = pickle.load(self._proc.stdout)
        except (BrokenPipeError, EOFError):
            self.close()
            raise RuntimeError(f"the figure process ended while drawing {name}") from None
        if error is not None:
            raise RuntimeError(f"drawing {name} failed:\n{error}")

    def close(self) -> None:
        if self._proc is not None:
            self._proc.stdin.close()  # end of jobs: the process exits
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
            self._proc = None

    def __del__(self):
        self.close()


def _start() -> subprocess.Popen:
    root = str(Path(__file__).resolve().parents[1])  # this copy of the package, first
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    env.update(OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    command = [sys.executable, "-m", "vrnn_lightning.figure_worker"]
    return subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)


def _serve() -> None:
    jobs, replies = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing printed while drawing can corrupt the replies
    while True:
        try:
            name, args, kwargs = pickle.load(jobs)
        except EOFError:
            return
        try:
            _draw(name, args, kwargs)
            reply = None
        except Exception:
            reply = traceback.format_exc()
        pickle.dump(reply, replies)
        replies.flush()


if __name__ == "__main__":
    _serve()
