"""vrnn-prepare: read a corpus once into HDF5 frame stores (one per split).

    vrnn-prepare --config conf/timit.yaml [key=value ...]

The train split is written first: its statistics normalise every split. A finished store
whose fingerprint matches is reused; bad files are skipped and listed in report.json /
report.txt beside the store; an interrupted run leaves no store that looks finished.
The pipeline itself is vrnn_lightning.data.pipeline.
"""

from __future__ import annotations

import argparse
import os
import sys

from rich.console import Console

from .config import ConfigError, load_config
from .data.pipeline import prepare
from .data.source import CorpusError
from .data.store import DiskFull


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="vrnn-prepare", description="Prepare a corpus into HDF5 frame stores."
    )
    parser.add_argument("--config", help="a YAML config, e.g. conf/timit.yaml")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, e.g. data.root=...")
    args = parser.parse_args(argv)
    console = Console()
    try:
        cfg = load_config(args.config, args.overrides)
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


if __name__ == "__main__":
    sys.exit(main())
