"""SLURM: the job requeued after SIGUSR1, and Lightning's own requeue turned off.

``#SBATCH --signal=USR1@90`` sends SIGUSR1 90 s before the time limit. The run saves
``last.ckpt`` at the next batch boundary; then global rank 0 runs ``scontrol requeue`` for the
job (with ``#SBATCH --requeue`` the job goes back to the queue, and when it starts again its
unchanged command resumes from ``last.ckpt``: ckpt_path=auto). Lightning's SLURMEnvironment
would do the same from inside the signal handler, saving an ``hpc_ckpt`` on every rank
there; vrnn-fit gives Lightning ``SLURMEnvironment(auto_requeue=False)`` instead.
"""

from __future__ import annotations

import os
import signal
import subprocess

from lightning.pytorch.plugins.environments import SLURMEnvironment
from lightning.pytorch.utilities import rank_zero_warn

REQUEUE_SIGNAL = signal.SIGUSR1  # SLURM's warning signal (--signal=USR1@N)


def slurm_plugins() -> list:
    """Trainer plugins under SLURM: its environment without Lightning's requeue handler."""
    return [SLURMEnvironment(auto_requeue=False)] if SLURMEnvironment.detect() else []


def job_id() -> str | None:
    """The job to requeue: SLURM_JOB_ID, or ARRAYID_TASKID for a job array's task."""
    array = os.environ.get("SLURM_ARRAY_JOB_ID")
    if array is not None and "SLURM_ARRAY_TASK_ID" in os.environ:
        return f"{array}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    return os.environ.get("SLURM_JOB_ID")


def requeue() -> str:
    """``scontrol requeue`` of this job; what happened, in words (a warning when it failed)."""
    job = job_id()
    if job is None:
        return "not a SLURM job: not requeued"
    try:
        done = subprocess.run(
            ["scontrol", "requeue", job], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        rank_zero_warn(f"SLURM job {job} not requeued: scontrol failed ({err})")
        return f"SLURM job {job} not requeued (scontrol failed)"
    if done.returncode != 0:
        why = (done.stderr or done.stdout).strip()
        rank_zero_warn(f"SLURM job {job} not requeued: scontrol exit {done.returncode}: {why}")
        return f"SLURM job {job} not requeued (scontrol exit {done.returncode})"
    return f"SLURM job {job} requeued"
