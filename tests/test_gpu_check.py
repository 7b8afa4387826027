"""bench/gpu_check.sh: its preflight (what is missing, a GPU torch cannot use, a part that
hangs) and, without CUDA, its quick CPU fallback end to end."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "bench" / "gpu_check.sh"
DRIVER = "550.54.15"


def fake_nvidia_smi(folder: Path) -> Path:
    """An nvidia-smi that lists one H200 (``-L``) and answers the driver query."""
    folder.mkdir(parents=True, exist_ok=True)
    exe = folder / "nvidia-smi"
    exe.write_text(
        "#!/bin/sh\n"
        'case "$*" in\n'
        '  -L) echo "GPU 0: NVIDIA H200 (UUID: GPU-00000000-0000-0000-0000-000000000000)" ;;\n'
        f'  *driver_version*) echo "{DRIVER}" ;;\n'
        '  *) echo "NVIDIA H200, 143771 MiB, ' + DRIVER + '" ;;\n'
        "esac\n"
    )
    exe.chmod(0o755)
    return folder


def run(env: dict, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def base_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES", "PYTHONPATH")}
    env["PYTHON"] = sys.executable
    env.update(extra)
    return env


@pytest.mark.parametrize("module", ["h5py", "vrnn_lightning"])
def test_a_missing_module_is_named_with_how_to_install_it_exit_2(tmp_path, module):
    # a module that does not import (the shim stands first on PYTHONPATH); the real gap was an
    # install gate that imported vrnn_lightning from the checkout's root and always passed
    shim = tmp_path / "shim" / module
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text(
        f"raise ModuleNotFoundError(\"No module named '{module}'\", name={module!r})\n"
    )
    done = run(base_env(PYTHONPATH=str(tmp_path / "shim")))
    out = done.stdout
    assert done.returncode == 2, out + done.stderr
    assert f"No module named '{module}'" in out
    how = "python -m pip install -e ." if module == "vrnn_lightning" else f"pip install '{module}'"
    assert how in out
    assert "To install everything at once: python -m pip install -e ." in out
    assert "=== tables" not in out  # nothing ran past the preflight
    assert "preflight  exit   2" in out


@pytest.mark.skipif(torch.cuda.is_available(), reason="torch can use a GPU here")
def test_a_gpu_that_torch_cannot_use_exits_1_with_the_versions(tmp_path):
    # nvidia-smi lists a GPU, torch (a CPU build here) cannot use it: this used to fall
    # through to the CPU fallback and exit 0
    bin_dir = fake_nvidia_smi(tmp_path / "bin")
    done = run(base_env(PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}"))
    out = done.stdout
    assert done.returncode == 1, out + done.stderr
    assert "nvidia-smi lists a GPU but torch cannot use it" in out
    assert "GPU 0: NVIDIA H200" in out
    assert f"torch {torch.__version__}, torch.version.cuda = {torch.version.cuda}" in out
    assert f"driver {DRIVER}" in out
    assert "quick CPU fallback" not in out and "=== tables" not in out
    assert "preflight  exit   1" in out


def test_a_part_that_hangs_is_cut_and_reported_as_124(tmp_path):
    hang = tmp_path / "python"
    hang.write_text("#!/bin/sh\nsleep 60\n")
    hang.chmod(0o755)
    done = run(base_env(PYTHON=str(hang), GPU_CHECK_PREFLIGHT_LIMIT="1"), timeout=60)
    assert done.returncode == 124, done.stdout + done.stderr
    assert "gpu_check: preflight timed out after 1 s" in done.stdout
    assert "preflight  exit 124" in done.stdout


def test_an_unknown_argument_is_a_usage_error():
    done = run(base_env(), "--fast", timeout=30)
    assert done.returncode == 2
    assert "unknown argument --fast" in done.stderr and "[--quick]" in done.stderr


@pytest.mark.slow  # a whole (tiny) run: about 20 s on a quiet 2-core machine
def test_gpu_check_without_cuda_runs_the_cpu_fallback_of_every_part(tmp_path):
    # GPUs hidden on purpose (CUDA_VISIBLE_DEVICES=""), even where nvidia-smi lists one
    bin_dir = fake_nvidia_smi(tmp_path / "bin")
    env = base_env(CUDA_VISIBLE_DEVICES="", PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    done = run(env, timeout=600)
    out = done.stdout
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "gpus=0" in out
    assert "quick CPU fallback" in out
    for mode in ("naive fp32", "eager fp32", "naive bf16", "eager bf16"):
        assert f"  {mode} " in out, mode
    # each precision's launch-free lower bound (its recorded products, whose FLOPs the script
    # checks against the step's counted FLOPs), and each eager step against it
    for precision in ("fp32", "bf16"):
        assert f"matmul bound {precision}: " in out, precision
        eager = next(line for line in out.splitlines() if f"  eager {precision} " in line)
        assert float(eager.split()[-1].rstrip("x")) > 0, eager  # (no timing claim at tiny sizes)
    assert "IWAE / (K x ELBO)" in out
    assert "real-time factor" in out
    assert "whole run, training only" in out and "6 steps" in out
    # every part's exit code at the end
    for part in ("preflight", "tables", "whole-run"):
        assert f"{part:10} exit   0" in out, part
