"""README.md's Python example runs as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, re.S)


def test_the_notebook_example_trains_five_steps(tmp_path):
    [example] = [b for b in python_blocks((REPO / "README.md").read_text()) if "L.Trainer" in b]
    assert "L.Trainer(max_steps=5).fit(module, datamodule=dm)" in example
    # run as a user would: a fresh interpreter in an empty folder; then check what it did
    check = "\nassert module.global_step == 5 and module.x_dim == 200, module.global_step\n"
    env = {**os.environ, "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(
        [sys.executable, "-c", example + check],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "data_cache").is_dir()
