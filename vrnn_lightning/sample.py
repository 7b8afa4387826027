"""vrnn-sample: listen to / look at what a trained model generates.

    vrnn-sample --ckpt runs/timit/checkpoints/last.ckpt --out samples/timit [key=value ...]
    vrnn-sample --ckpt ... --out ... sample.n=8 sample.steps=160        # 2 s of 16 kHz audio
    vrnn-sample --ckpt ... --out ... sample.primer_steps=40             # continue a valid sequence

Audio corpora: ``sample_NN.wav`` holds the de-normalised decoder means (what the paper saved
as audio), ``sample_NN_sampled.wav`` the sampled frames that were fed back, both at the
dataset's sample rate, plus ``waveforms.png`` and, for the VRNN variants, ``kl_valid_00.png``
(the paper's Figure 2). Handwriting: ``strokes.png``. Always: ``samples.npy`` and
``means.npy`` (de-normalised, (n, steps, D)).
"""

from __future__ import annotations

import argparse
import sys

from rich.console import Console

from .config import ConfigError
from .data.source import CorpusError
from .generation import sample_checkpoint


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="vrnn-sample",
        description="Generate audio (WAV + PNG) or handwriting (PNG) from a vrnn-fit checkpoint.",
    )
    parser.add_argument("--ckpt", required=True, help="a checkpoint written by vrnn-fit")
    parser.add_argument("--out", required=True, help="folder for the WAV / PNG / NPY files")
    parser.add_argument(
        "overrides", nargs="*", help="key=value overrides, e.g. sample.n=8 sample.primer_steps=40"
    )
    args = parser.parse_args(argv)
    try:
        generated, cfg = sample_checkpoint(args.ckpt, args.out, args.overrides)
    except (ConfigError, CorpusError) as err:
        print(f"vrnn-sample: {err}", file=sys.stderr)
        return 2
    console = Console()
    for path, caption in generated.audio + generated.images:
        console.print(f"{path}  [dim]{caption}[/dim]")
    s = cfg.sample
    console.print(f"vrnn-sample: {s.n} samples of {s.steps} steps in {generated.folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
