"""What every command's argument parser shares: the config sections and --print-config.

Kept free of heavy imports (torch, lightning): ``--help`` and ``--print-config`` answer at once.
"""

from __future__ import annotations

import argparse

SECTIONS = (
    "Config keys are section.key=value; sections: model, data, optim, trainer (any "
    "lightning.Trainer argument, e.g. trainer.fast_dev_run=true), logger, eval, sample; plus "
    "name, seed, out_dir, ckpt_path. --print-config lists every key with its value."
)


def add_print_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--print-config",
        action="store_true",
        help="print the resolved config (every key, after the YAML and the overrides) and exit",
    )


def print_config_and_exit(cfg) -> int:
    from .config import to_yaml

    print(to_yaml(cfg), end="")
    return 0
