"""vrnn-eval: the log-likelihood of a split under a trained model, every estimator, in nats.

    vrnn-eval --ckpt runs/timit/checkpoints/last.ckpt [--out FILE] [key=value ...]
    vrnn-eval --ckpt ... eval.split=valid eval.iw_samples=40 eval.batch_size=8
    vrnn-eval --ckpt ... --inputs my_recording.wav more_recordings/   # score your own files
    vrnn-eval --ckpt exported/timit ...                               # a vrnn-export folder

- ELBO: the variational lower bound, one z sample per step (the paper's ">=" column).
- IWAE: the sequence-level importance-weighted bound with K = eval.iw_samples samples.
- SMC: the particle filter's bound with K particles (eval.resampling, eval.ess_threshold).
- paper: the paper's per-step estimator with the same K (its "≈" column; not a bound).

Each is reported per sequence (the mean over sequences of the sum over their frames, as the
paper's Table 1) and per frame (the total over all frames / the number of frames). For the
rnn_* variants there is no latent variable and all three are the exact log-likelihood.
The K samples of a batch run as K * eval.batch_size rows at once, or a few sequences at a time
where that would hold more than eval.memory_gb (default 4 GB; raise it on a large GPU for
speed, null never splits); the estimates are the same up to Monte Carlo noise.
The overrides apply to the checkpoint's own config (``data.cache_dir=...`` when the data
moved); ``model.*`` comes from the checkpoint and cannot change. The data is always normalised
with the statistics the model was trained with (recorded in the checkpoint); a note says when
the store on disk is not the one it was trained on.

``--inputs`` scores files instead of a split (audio: WAV, FLAC, MP3, SPHERE, ... resampled to
the model's rate, downmixed and framed as in training; strokes: files of the corpus's format),
each file one whole sequence; files that cannot be read are listed and skipped.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .allocator import reuse_freed_memory
from .cli import SECTIONS, add_print_config, print_config_and_exit
from .config import ConfigError
from .data.source import CorpusError

# torch, Lightning and the estimators are imported when there is something to evaluate:
# --help answers at once


def files_table(result: dict):
    from rich.table import Table

    from .estimators import ESTIMATORS

    k = result["iw_samples"]
    t = Table(title="per file: log-likelihood in nats, per sequence (per frame)")
    t.add_column("file")
    t.add_column("frames", justify="right")
    for estimator in ESTIMATORS.values():
        t.add_column(estimator.label(k), justify="right")
    for r in result["files"]:
        t.add_row(
            r["file"],
            str(r["n_frames"]),
            *(f"{r[n]['per_sequence']:.2f} ({r[n]['per_frame']:.3f})" for n in ESTIMATORS),
        )
    return t


def table(result: dict):
    from rich.table import Table

    from .estimators import ESTIMATORS
    from .variant import Variant

    exact = not Variant.parse(result["variant"]).has_latent
    k = result["iw_samples"]
    unit = "sequence" if result["eval_full_sequences"] else f"{result['seq_len']}-frame window"
    t = Table(
        title=f"{result['variant']} on {result['dataset']} ({result['split']}): "
        f"log-likelihood in nats",
        caption=(
            "rnn_* variant: all are the exact log-likelihood"
            if exact
            else f">=: a lower bound (SMC's in expectation; it resampled "
            f"{result['smc']['resampled_per_sequence']:.1f} times per sequence); ≈: not a bound. "
            f"{result['n_sequences']} sequences, {result['n_frames']} frames"
        ),
    )
    t.add_column("estimate")
    t.add_column(f"per {unit}", justify="right")
    t.add_column("per frame", justify="right")
    for name, estimator in ESTIMATORS.items():
        r = result[name]
        label = estimator.label(k)
        if r.get("nonfinite_sequences"):
            label += f" ({r['nonfinite_sequences']} non-finite sequences left out)"
        t.add_row(label, _number(r["per_sequence"], 2), _number(r["per_frame"], 4))
    return t


def _number(value: float | None, digits: int) -> str:
    return "non-finite" if value is None else f"{value:.{digits}f}"


def main(argv: list[str] | None = None) -> int:
    reuse_freed_memory()  # before the first large tensor (vrnn_lightning/allocator.py)
    parser = argparse.ArgumentParser(
        prog="vrnn-eval",
        description="ELBO, IWAE, SMC and the paper's estimate of a split, or of your own files "
        "(--inputs), from a vrnn-fit checkpoint or a vrnn-export folder. Overrides apply to the "
        "checkpoint's config; the eval section: split, iw_samples, batch_size, resampling, "
        "ess_threshold, memory_gb.",
        epilog=SECTIONS,
    )
    parser.add_argument("--ckpt", required=True, help="a vrnn-fit checkpoint or export folder")
    parser.add_argument(
        "--inputs",
        nargs="+",
        metavar="FILE_OR_FOLDER",
        help="score these files instead of a split: audio (WAV, FLAC, MP3, SPHERE, ...) or "
        "stroke files of the corpus's format",
    )
    parser.add_argument(
        "--out", help="JSON file (default <run folder>/eval_<split>.json, eval_inputs.json)"
    )
    add_print_config(parser)
    parser.add_argument("overrides", nargs="*", help="key=value overrides, e.g. eval.split=valid")
    args = parser.parse_args(argv)
    if args.inputs:  # --inputs takes what follows it: a key=value that names no file is an override
        overrides = [a for a in args.inputs if "=" in a and not Path(a).exists()]
        args.inputs = [a for a in args.inputs if a not in overrides]
        args.overrides += overrides
        if not args.inputs:
            parser.error("--inputs: no file or folder given")

    from rich.console import Console

    from .checkpoint import load_checkpoint
    from .evaluation import evaluate_checkpoint

    console = Console()

    def show(result: dict) -> None:  # before the write: a failed one loses no evaluation
        if args.inputs:
            console.print(files_table(result))
            for skipped in result["skipped"]:
                console.print(f"[yellow]skipped[/yellow] {skipped['file']}: {skipped['reason']}")
        console.print(table(result))

    try:
        if args.print_config:
            return print_config_and_exit(load_checkpoint(args.ckpt, args.overrides)[1])
        _, out = evaluate_checkpoint(
            args.ckpt, args.overrides, args.out, console, inputs=args.inputs, show=show
        )
    except (ConfigError, CorpusError) as err:
        print(f"vrnn-eval: {err}", file=sys.stderr)
        return 2
    console.print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
