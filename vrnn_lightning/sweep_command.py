"""The command a W&B sweep agent runs for one run, from the sweep's ``command`` template.

The macros are W&B's documented ones (sweep configuration, "command"): ``${env}``,
``${interpreter}``, ``${program}``, ``${args}`` (``--key=value``), ``${args_no_hyphens}``
(``key=value``), ``${args_no_boolean_flags}`` (``--key`` for true, nothing for false),
``${args_no_equals}``, ``${args_json}``, ``${args_json_file}`` and ``${envvar:NAME}``.
Expanded here from that documentation, not from the agent's internal helpers (wandb.sdk),
so that a W&B release cannot change what vrnn-sweep --local runs; tests/test_sweep.py holds
the expansion against examples.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

DEFAULT_COMMAND = ["${env}", "${interpreter}", "${program}", "${args}"]  # W&B's default
ENVVAR = re.compile(r"\$\{envvar:([A-Za-z0-9_]+)\}")  # left as the name when unset, as W&B


class SweepError(ValueError):
    """A sweep that cannot run; the message names the file or key and what is expected."""


def argument_forms(args: dict) -> dict[str, list[str]]:
    """Each macro's expansion for the run's parameters ``args`` ({key: {"value": v}})."""
    values = {key: spec["value"] for key, spec in args.items()}
    pairs = [f"{key}={value}" for key, value in values.items()]
    return {
        "args": [f"--{p}" for p in pairs],
        "args_no_hyphens": pairs,
        "args_no_equals": [s for k, v in values.items() for s in (f"--{k}", str(v))],
        "args_no_boolean_flags": [
            f"--{k}" if v is True else f"--{k}={v}" for k, v in values.items() if v is not False
        ],
        "args_json": [json.dumps(values)],
    }


def agent_command(sweep_config: dict, args: dict, args_json_file: Path) -> list[str]:
    """The command line W&B's agent runs for a run with parameters ``args``; writes
    ``args_json_file`` when the template uses ``${args_json_file}``."""
    template = [
        ENVVAR.sub(lambda m: os.environ.get(m.group(1), m.group(1)), str(chunk))
        for chunk in sweep_config.get("command") or DEFAULT_COMMAND
    ]
    macros = argument_forms(args)
    macros.update(
        env=["/usr/bin/env"], interpreter=["python"], args_json_file=[str(args_json_file)]
    )
    if "program" in sweep_config:
        macros["program"] = [str(sweep_config["program"])]
    elif "${program}" in template:
        raise SweepError("program: the command uses ${program} but the sweep sets no program")
    if "${args_json_file}" in template:
        args_json_file.parent.mkdir(parents=True, exist_ok=True)
        args_json_file.write_text(macros["args_json"][0])
    command = []
    for chunk in template:
        if chunk.startswith("${") and chunk.endswith("}"):
            command += macros.get(chunk[2:-1], [])
        else:
            command.append(chunk)
    return command
