"""vrnn-export: a trained model as a folder to share: weights, config, model card.

    vrnn-export --ckpt runs/fsdd/checkpoints/best-....ckpt --out exported/fsdd

The folder holds ``model.safetensors`` (the weights: safetensors carries no code, and no
optimiser state: a fraction of the checkpoint's size), ``config.json`` (the run config, what
x_t is, the training normalisation and store fingerprint, the metrics) and ``README.md`` (a
model card: what it was trained on, the variant and size, its figures, the command that made
it, how to load it). The run folder's eval_*.json files (vrnn-eval) go into the card too.

    vrnn-sample --ckpt exported/fsdd --out samples/
    vrnn-eval --ckpt exported/fsdd --inputs my_recording.wav
    vrnn_lightning.load_pretrained("exported/fsdd")
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="vrnn-export",
        description="Write a vrnn-fit checkpoint as a shareable folder: model.safetensors, "
        "config.json and a README.md model card.",
    )
    parser.add_argument("--ckpt", required=True, help="a vrnn-fit checkpoint")
    parser.add_argument("--out", required=True, help="the folder to write")
    args = parser.parse_args(argv)

    from .checkpoint import load_trained, run_dir
    from .config import ConfigError
    from .model_export import export

    try:
        trained = load_trained(args.ckpt)
        out = Path(args.out)
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise ConfigError(f"--out: {out} exists and is not an empty folder")
        evaluations = []
        for path in sorted(run_dir(args.ckpt, trained.config).glob("eval_*.json")):
            try:
                result = json.loads(path.read_text())
            except ValueError:
                continue
            if (
                result.get("checkpoint")
                and Path(result["checkpoint"]).resolve() == Path(args.ckpt).resolve()
            ):
                evaluations.append(result)
        folder = export(trained, out, evaluations)
    except ConfigError as err:
        print(f"vrnn-export: {err}", file=sys.stderr)
        return 2
    size = sum(p.stat().st_size for p in folder.iterdir()) / 1e6
    print(f"vrnn-export: {folder} ({size:.1f} MB): model.safetensors, config.json, README.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
