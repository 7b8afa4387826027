"""vrnn-sweep: run a W&B sweep YAML on this machine with W&B's own sweep engine.

    vrnn-sweep sweeps/demo_variants.yaml --local [--count N] [--jobs N] [--out DIR] [key=value]
    vrnn-sweep report sweeps_local/demo_variants [--iw-samples K]
    vrnn-sweep sweeps/timit_variants.yaml        # check the file and list the runs it proposes

Online, W&B runs the same file: ``wandb sweep FILE`` then ``wandb agent ENTITY/PROJECT/ID``.
The local engine, its state file and the report: vrnn_lightning.local_sweep and report.py.
``key=value`` overrides after the file apply to every run the invocation starts (e.g.
trainer.max_epochs=2). ``report`` evaluates with the K the sweep was run with (--iw-samples
there, else each run's eval.iw_samples) unless given its own --iw-samples.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console

from .local_sweep import (
    STATE_FILE,
    LocalSweep,
    Stopped,
    SweepError,
    check,
    report,
    report_folders,
    run_local,
)
from .report import ReportError


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not >= 1")
    return value


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    console = Console()
    reporting = bool(argv) and argv[0] == "report"
    parser = argparse.ArgumentParser(
        prog="vrnn-sweep report" if reporting else "vrnn-sweep",
        description="Rebuild the Table 1 report of a local sweep, or make one of run folders."
        if reporting
        else "Run a W&B sweep YAML here with W&B's sweep engine (--local), or check it.",
        epilog=None
        if reporting
        else "Also: vrnn-sweep report FOLDER... [--out DIR] [--iw-samples K]: rebuild the "
        "Table 1 report of a local sweep folder (or make one of run folders); K defaults to the "
        "one the sweep ran with.",
    )
    if reporting:
        parser.add_argument(
            "folders", nargs="+", help="a local sweep folder (holding state.json) or run folders"
        )
        parser.add_argument("--out", help="report folder (default: the one local sweep folder)")
    else:
        parser.add_argument("sweep", help="a W&B sweep YAML, e.g. sweeps/demo_variants.yaml")
        parser.add_argument("--local", action="store_true", help="run it on this machine")
        parser.add_argument("--count", type=_positive, help="runs in the sweep (default run_cap)")
        parser.add_argument(
            "--jobs",
            type=_positive,
            default=1,
            help="runs at once (default 1), each on cores // jobs threads unless "
            "OMP_NUM_THREADS is set, and on GPUs // jobs GPUs of its own "
            "(CUDA_VISIBLE_DEVICES; shared round-robin when jobs > GPUs)",
        )
        parser.add_argument("--out", help="state and report folder (default sweeps_local/NAME)")
        parser.add_argument("--poll", type=float, default=5.0, help="seconds between checks")
        parser.add_argument(
            "overrides", nargs="*", help="key=value for every run, e.g. trainer.max_epochs=2"
        )
    parser.add_argument("--iw-samples", type=_positive, help="K for IWAE (default eval.iw_samples)")
    # intermixed: key=value may follow the options (FILE --local key=value)
    args = parser.parse_intermixed_args(argv[1:] if reporting else argv)
    try:
        if reporting:
            one_sweep = len(args.folders) == 1 and (Path(args.folders[0]) / STATE_FILE).is_file()
            if one_sweep and not args.out:
                report(LocalSweep.open(args.folders[0]), args.iw_samples, console)
            elif not args.out:
                parser.error("--out DIR is needed for run folders or several sweeps")
            else:
                report_folders(args.folders, args.out, args.iw_samples, console)
        elif args.local:
            run_local(
                args.sweep,
                args.out,
                args.count,
                args.jobs,
                args.poll,
                args.iw_samples,
                console,
                args.overrides,
            )
        else:
            check(args.sweep, console, overrides=args.overrides)
    except (SweepError, ReportError) as err:
        print(f"vrnn-sweep: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        why = f" by {err}" if isinstance(err, Stopped) else ""
        print(
            f"vrnn-sweep: interrupted{why}; its runs are stopped and marked preempted; "
            "run the same command again to continue",
            file=sys.stderr,
        )
        return 128 + err.signum if isinstance(err, Stopped) else 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
