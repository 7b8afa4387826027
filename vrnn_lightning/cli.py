"""What every command's argument parser shares: the config sections and --print-config;
vrnn-fit's parser (the sweep reads a run's command line with it too).

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


def run_parser() -> argparse.ArgumentParser:
    """vrnn-fit's command line: ``--config FILE``, ``--print-config`` and ``key=value``."""
    parser = argparse.ArgumentParser(
        prog="vrnn-fit",
        description="Train a VRNN variant. Overrides are key=value, e.g. model.variant=vrnn_gmm.",
        epilog=SECTIONS,
    )
    parser.add_argument("--config", help="YAML config (see conf/)")
    add_print_config(parser)
    parser.add_argument("overrides", nargs="*", help="key=value overrides of the config")
    return parser


def parse_run_args(argv: list[str] | None = None) -> tuple[str | None, list[str]]:
    """vrnn-fit's command line (``--config FILE`` and ``key=value`` overrides) -> (path,
    overrides); shared with the sweep, which must read a run's command as vrnn-fit does."""
    args = run_parser().parse_args(argv)
    return args.config, args.overrides
