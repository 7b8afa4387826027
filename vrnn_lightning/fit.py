"""vrnn-fit: train a VRNN variant on a corpus, as the config says.

    vrnn-fit --config conf/timit.yaml [key=value ...]
    vrnn-fit --config conf/timit.yaml ckpt_path=last      # resume a killed run

The run folder (``out_dir``, default runs/<name>) holds the resolved config, a CSV of every
logged metric, the checkpoints (best on val/elbo, and last), generated samples and, unless
disabled, the offline W&B run (``wandb sync`` uploads it later).
"""

from __future__ import annotations

import sys

from .config import ConfigError, load_config, parse_run_args
from .data.source import CorpusError
from .training import train


def main(argv: list[str] | None = None) -> int:
    config_path, overrides = parse_run_args(argv)
    try:
        cfg = load_config(config_path, overrides)
        out_dir = train(cfg)
    except (ConfigError, CorpusError) as err:
        print(f"vrnn-fit: {err}", file=sys.stderr)
        return 2
    print(f"vrnn-fit: run folder {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
