"""vrnn-eval: the log-likelihood of a split under a trained model, every estimator, in nats.

    vrnn-eval --ckpt runs/timit/checkpoints/last.ckpt [--out FILE] [key=value ...]
    vrnn-eval --ckpt ... eval.split=valid eval.iw_samples=40 eval.batch_size=8

- ELBO: the variational lower bound, one z sample per step (the paper's ">=" column).
- IWAE: the sequence-level importance-weighted bound with K = eval.iw_samples samples.
- SMC: the particle filter's bound with K particles (eval.resampling, eval.ess_threshold).
- paper: the paper's per-step estimator with the same K (its "≈" column; not a bound).

Each is reported per sequence (the mean over sequences of the sum over their frames, as the
paper's Table 1) and per frame (the total over all frames / the number of frames). For the
rnn_* variants there is no latent variable and all three are the exact log-likelihood.
The K samples of a batch run as K * eval.batch_size rows at once: lower eval.batch_size when
long sequences (data.eval_full_sequences=true) do not fit in memory.
The overrides apply to the checkpoint's own config (``data.cache_dir=...`` when the data
moved); ``model.*`` comes from the checkpoint and cannot change.
"""

from __future__ import annotations

import argparse
import sys

from rich.console import Console
from rich.table import Table

from .config import ConfigError
from .data.source import CorpusError
from .estimators import ESTIMATORS
from .evaluation import evaluate_checkpoint
from .variant import Variant


def table(result: dict) -> Table:
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
    parser = argparse.ArgumentParser(
        prog="vrnn-eval",
        description="ELBO, IWAE, SMC and the paper's estimate of a split, from a vrnn-fit "
        "checkpoint.",
    )
    parser.add_argument("--ckpt", required=True, help="a checkpoint written by vrnn-fit")
    parser.add_argument("--out", help="JSON file (default <run folder>/eval_<split>.json)")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, e.g. eval.split=valid")
    args = parser.parse_args(argv)
    console = Console()

    def show(result: dict) -> None:  # before the write: a failed one loses no evaluation
        console.print(table(result))

    try:
        _, out = evaluate_checkpoint(args.ckpt, args.overrides, args.out, console, show)
    except (ConfigError, CorpusError) as err:
        print(f"vrnn-eval: {err}", file=sys.stderr)
        return 2
    console.print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
