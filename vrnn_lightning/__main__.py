"""``python -m vrnn_lightning``: the commands, one line each."""

from __future__ import annotations

import sys

from .version import __version__

COMMANDS = {
    "vrnn-prepare": "corpus -> HDF5 frame stores (train/valid/test), with a report of bad files",
    "vrnn-fit": "train a variant as a config says (--config conf/NAME.yaml key=value ...)",
    "vrnn-eval": "ELBO, IWAE(K) and the paper's estimate of a split, or of your own --inputs",
    "vrnn-sample": "generate audio (WAV + PNG) or handwriting (PNG) from a trained model",
    "vrnn-export": "a checkpoint -> a shareable folder (safetensors weights, config, model card)",
    "vrnn-sweep": "run or report a sweep of runs (locally or as a W&B agent)",
}


def main() -> int:
    print(f"vrnn-lightning {__version__}: the Variational RNN (Chung et al. 2015)\n")
    width = max(map(len, COMMANDS))
    for name, what in COMMANDS.items():
        print(f"  {name:<{width}}  {what}")
    print("\nEach command: --help for its arguments; vrnn-fit/eval/sample --print-config for")
    print("every config key. As modules: python -m vrnn_lightning.fit (prepare, evaluate, ...).")
    print("python -m vrnn_lightning.versions: do this environment's packages fit (exit 1 if not)?")
    return 0


if __name__ == "__main__":
    sys.exit(main())
