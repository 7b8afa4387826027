"""vrnn-sweep: run a W&B sweep YAML locally with W&B's own sweep engine (issue 5).

Not implemented yet: it says so and exits with code 2 rather than pretending.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    print(
        "vrnn-sweep: not yet implemented. Meanwhile run a sweep with W&B itself: "
        "`wandb sweep sweeps/NAME.yaml` then `wandb agent ENTITY/PROJECT/SWEEP_ID`.",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main())
