"""vrnn-fit: train a VRNN variant on a corpus, as the config says.

    vrnn-fit --config conf/timit.yaml [key=value ...]
    vrnn-fit --config conf/timit.yaml [key=value ...]   # again: resumes where it stopped

The same command resumes a stopped or killed run from its last.ckpt (``ckpt_path=auto``, the
default; a finished run is refused, ``ckpt_path=last`` trains it further). SIGTERM (a
scheduler's preemption) and SIGUSR1 (SLURM's time-limit warning; the job is also requeued)
save last.ckpt at the next batch boundary and exit 143 and 138; Ctrl-C exits 130 (last.ckpt
is its last validation's). Each says so on stderr. A usage error (a bad key, value, corpus or
checkpoint) exits 2 before anything is written. Only a run that reached its end exits 0, and
leaves finished.json in its folder (vrnn_lightning/preemption/).

The run folder (``out_dir``, default runs/<name>) holds the resolved config, a CSV of every
logged metric, the checkpoints (best on val/elbo, and last), generated samples and, unless
disabled, the offline W&B run (``wandb sync`` uploads it later), and at the end
``learning_curves.png`` (from the CSV). ``logger.tensorboard=true`` adds TensorBoard event
files under ``tensorboard/``. ``--print-config`` prints the resolved config and exits.
"""

from __future__ import annotations

import shlex
import sys

from .allocator import reuse_freed_memory
from .cli import print_config_and_exit, run_parser
from .config import ConfigError, load_config
from .data.source import CorpusError

# training (torch, Lightning) is imported when there is something to train: --help and
# --print-config answer at once


def main(argv: list[str] | None = None) -> int:
    reuse_freed_memory()  # before the first large tensor (vrnn_lightning/allocator.py)
    argv = sys.argv[1:] if argv is None else list(argv)
    args = run_parser().parse_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
        if args.print_config:
            return print_config_and_exit(cfg)
        from .training import RunInterrupted, train

        try:
            out_dir = train(cfg, command=shlex.join(["vrnn-fit", *argv]))
        except RunInterrupted as stop:  # SIGTERM, SIGUSR1 or Ctrl-C: never exit 0
            if stop.rank == 0:
                print(f"vrnn-fit: {stop}", file=sys.stderr)
            return stop.exit_code
    except (ConfigError, CorpusError) as err:
        print(f"vrnn-fit: {err}", file=sys.stderr)
        return 2
    from lightning.pytorch.utilities import rank_zero_only

    if rank_zero_only.rank == 0:  # under DDP every rank returns here; one says so
        print(f"vrnn-fit: run folder {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
