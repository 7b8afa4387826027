"""vrnn-prepare: read a corpus once into HDF5 frame stores (one per split).

    vrnn-prepare --config conf/timit.yaml [key=value ...]
    vrnn-prepare --check --config conf/timit.yaml data.root=/data/timit   # the copy's layout

The train split is written first: its statistics normalise every split. A finished store
whose fingerprint matches is reused; bad files are skipped and listed in report.json /
report.txt beside the store; an interrupted run leaves no store that looks finished.
The pipeline itself is vrnn_lightning.data.pipeline. ``--check`` only checks what data.root
holds against what the corpus must hold (vrnn_lightning.data.layout) and says what is
missing: exit 0 when complete, 2 otherwise; nothing is written or downloaded.
"""

from __future__ import annotations

import argparse
import os
import sys

from rich.console import Console

from .config import ConfigError, load_config
from .data.layout import check_layout
from .data.pipeline import prepare
from .data.source import CorpusError
from .data.store import DiskFull, as_data_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="vrnn-prepare", description="Prepare a corpus into HDF5 frame stores."
    )
    parser.add_argument("--config", help="a YAML config, e.g. conf/timit.yaml")
    parser.add_argument(
        "--check",
        action="store_true",
        help="only check the corpus's layout at data.root and say what is missing",
    )
    parser.add_argument("overrides", nargs="*", help="key=value overrides, e.g. data.root=...")
    args = parser.parse_args(argv)
    console = Console()
    try:
        cfg = load_config(args.config, args.overrides)
        if args.check:
            return print_layout(console, check_layout(as_data_config(cfg.data)))
        prepare(cfg.data, console=console)
    except (ConfigError, CorpusError) as err:
        print(f"vrnn-prepare: {err}", file=sys.stderr)
        if isinstance(err, DiskFull) and err.hdf5_failed:
            # h5py after a failed write crashes the process at exit (a segmentation fault):
            # the temporary is already gone, so end here with the message and the exit code
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(2)
        return 2
    except KeyboardInterrupt:
        print("vrnn-prepare: interrupted; no finished store was left behind", file=sys.stderr)
        return 130
    return 0


def print_layout(console: Console, layout) -> int:
    """The findings, one a line; 0 when every one is met, else 2."""
    console.print(f"[bold]{layout.corpus}[/] at {layout.root or '(no data.root)'}")
    for met, text in layout.findings:
        console.print(f"  {'[green]ok[/]' if met else '[red]no[/]'} {text}", highlight=False)
    if layout.complete:
        console.print("complete: vrnn-prepare with the same config prepares it")
        return 0
    print(
        f"vrnn-prepare: {layout.corpus} at {layout.root}: {len(layout.missing)} finding(s) not met",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main())
