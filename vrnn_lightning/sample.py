"""vrnn-sample: listen to / look at what a trained model generates.

    vrnn-sample --ckpt runs/timit/checkpoints/last.ckpt --out samples/timit [key=value ...]
    vrnn-sample --ckpt ... --out ... sample.n=8 sample.steps=160        # 2 s of 16 kHz audio
    vrnn-sample --ckpt ... --out ... sample.primer_steps=40             # continue a valid sequence
    vrnn-sample --ckpt exported/timit --out ...                         # a vrnn-export folder

The checkpoint alone is enough: no corpus and no prepared data are needed, except for a
primer (``sample.primer_steps``) and the KL figure, which use the validation split when its
store is already prepared.

Audio corpora: ``sample_NN_mean.wav`` holds the de-normalised decoder means (what the paper
saved as audio), peak-normalised to -1 dBFS unless ``sample.peak_normalise=false`` (the gain
is in ``samples.json`` and the WAV's comment); ``sample_NN_sampled.wav`` the sampled frames
that were fed back, at their own level: the one that sounds like the data. Both at the
model's sample rate, plus ``waveforms.png`` and, for the VRNN variants with the data at hand,
``kl_valid_00.png`` (the paper's Figure 2). Handwriting: ``strokes.png``. Always:
``samples.npy`` and ``means.npy`` (de-normalised, (n, steps, D), raw levels).
"""

from __future__ import annotations

import argparse
import sys

from .allocator import reuse_freed_memory
from .cli import SECTIONS, add_print_config, print_config_and_exit


def main(argv: list[str] | None = None) -> int:
    reuse_freed_memory()  # before the first large tensor (vrnn_lightning/allocator.py)
    parser = argparse.ArgumentParser(
        prog="vrnn-sample",
        description="Generate audio (WAV + PNG) or handwriting (PNG) from a vrnn-fit checkpoint "
        "or a vrnn-export folder. Overrides apply to the checkpoint's config; the sample.* "
        "section: n, steps, primer_steps, primer_index, peak_normalise.",
        epilog=SECTIONS,
    )
    parser.add_argument("--ckpt", required=True, help="a vrnn-fit checkpoint or export folder")
    parser.add_argument("--out", help="folder for the WAV / PNG / NPY files (required)")
    add_print_config(parser)
    parser.add_argument(
        "overrides", nargs="*", help="key=value overrides, e.g. sample.n=8 sample.primer_steps=40"
    )
    args = parser.parse_args(argv)

    from rich.console import Console

    from .checkpoint import datamodule_for, device, load_for_run, prepared_datamodule
    from .config import ConfigError
    from .data.source import CorpusError
    from .generation import generate_and_save

    try:
        trained, cfg = load_for_run(args.ckpt, args.overrides)
        if args.print_config:
            return print_config_and_exit(cfg)
        if not args.out:
            parser.error("--out is required")
        s = cfg.sample
        # the data only for a primer (prepared if need be) and the KL figure (if prepared)
        if s.primer_steps > 0:
            dm = datamodule_for(trained, cfg)
        else:
            dm = prepared_datamodule(trained, cfg)
        if trained.data.normalisation is None:  # a checkpoint older than that record
            dm = dm or datamodule_for(trained, cfg)
        generated = generate_and_save(
            trained.model.to(device()),
            dm,
            args.out,
            n=s.n,
            steps=s.steps,
            primer_steps=s.primer_steps,
            primer_index=s.primer_index,
            seed=cfg.seed,
            title=f"{cfg.model.variant} {cfg.data.dataset}",
            data=trained.data if trained.data.normalisation is not None else dm,
            peak_normalise=s.peak_normalise,
        )
    except (ConfigError, CorpusError) as err:
        print(f"vrnn-sample: {err}", file=sys.stderr)
        return 2
    console = Console()
    for path, caption in generated.audio + generated.images:
        console.print(f"{path}  [dim]{caption}[/dim]")
    console.print(f"vrnn-sample: {s.n} samples of {s.steps} steps in {generated.folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
