"""The stop signals: a handler that only notes the signal, and the ranks' agreement on it.

A signal handler runs between two Python bytecodes, wherever the program is: inside a DDP
collective, an optimiser step, a checkpoint write. It does nothing there but note the
signal; ``agreed()`` is called by every rank at the same batch boundary and returns the
signal any rank received (one all-reduce through the strategy; nothing with one process).
"""

from __future__ import annotations

import signal
import threading

import lightning as L
import torch

# the signals that stop a run at the next batch boundary, and what vrnn-fit then exits with
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)
EXIT_CODES = {int(s): 128 + int(s) for s in STOP_SIGNALS}  # 143, 138


class Preempted(Exception):
    """Raised on every rank once the run has saved ``last.ckpt`` after a stop signal."""

    def __init__(self, signum: int, step: int):
        self.signum, self.step = int(signum), int(step)
        self.exit_code = EXIT_CODES[self.signum]
        super().__init__(f"{signal.Signals(signum).name} at step {step}")


class StopSignals:
    """Notes SIGTERM and SIGUSR1 while installed; ``agreed(trainer)`` says whether (and which)
    any rank received one."""

    def __init__(self):
        self.received = 0
        self._previous: dict[int, object] = {}

    def note(self, signum, frame) -> None:
        self.received = max(self.received, int(signum))

    def install(self) -> None:
        """Make ``note`` the handler (again: Lightning installs its own as fit starts)."""
        if threading.current_thread() is not threading.main_thread():
            return  # Python only lets the main thread set handlers
        for signum in STOP_SIGNALS:
            previous = signal.signal(signum, self.note)
            self._previous.setdefault(signum, previous)

    def restore(self) -> None:
        """The handlers from before the first ``install``."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def agreed(self, trainer: L.Trainer) -> int:
        """The stop signal any rank has received (0: none); every rank must call it."""
        if trainer.world_size == 1:
            return self.received
        flag = torch.tensor(float(self.received), device=trainer.strategy.root_device)
        return int(trainer.strategy.reduce(flag, reduce_op="max").item())
