"""How a run survives being stopped: preemption, a requeue, a killed process.

One place owns it, on Lightning's documented APIs (callback hooks, ``trainer.save_checkpoint``,
``trainer.strategy.reduce``, a loader's ``state_dict``):

- ``signals.py``: SIGTERM (Kubernetes, most schedulers) and SIGUSR1 (SLURM's warning before a
  time limit, ``#SBATCH --signal=USR1@90``) only set a flag. Lightning's own SIGTERM handler
  broadcast from inside the handler, wherever each rank was (signalled together, the ranks
  hung in mismatched collectives), and its SLURM handler saved a checkpoint from inside the
  handler on every rank: both are replaced.
- ``resume_point.py``: ``ResumePoint``, the one writer of ``last.ckpt``: after every
  validation, at the run's last batch, at the end of an epoch no validation follows, and
  where a stop is agreed. A stop is acted on at the next batch boundary (a training batch
  after which the optimiser stepped and no validation follows, or a validation's end): the
  ranks agree on it with one all-reduce, all save ``last.ckpt`` together, rank 0 requeues the
  SLURM job on SIGUSR1 (``slurm.py``), and every rank stops: vrnn-fit exits 128 + the signal
  (143 for SIGTERM, 138 for SIGUSR1). Never in an epoch's end hooks: Lightning 2.6 resumes a
  checkpoint written there one epoch short when max_steps is set.
- ``data/resumable.py``: the training loader's place in its epoch, in every checkpoint, so
  that a run resumed in mid-epoch trains on the batches an uninterrupted one would.
- ``run_folder.py``: where a run resumes: ``ckpt_path=auto`` (the default) resumes the run
  folder's ``last.ckpt`` when there is one, so a requeued job's unchanged command line
  carries on; a finished run is never trained again without ``ckpt_path=last``.
- ``legacy.py``: checkpoints written by vrnn-lightning 0.1 at an epoch's end still resume.
"""

from .resume_point import RESUME_FORMAT, ResumePoint, validation_follows
from .run_folder import FINISHED, check_resume, mark_finished, resolve_ckpt_path
from .signals import EXIT_CODES, Preempted, StopSignals

__all__ = [
    "EXIT_CODES",
    "FINISHED",
    "RESUME_FORMAT",
    "Preempted",
    "ResumePoint",
    "StopSignals",
    "check_resume",
    "mark_finished",
    "resolve_ckpt_path",
    "validation_follows",
]
