"""Whether this machine can run bench/gpu_check.sh, before any part of it starts.

1. Every module the check imports, each imported for real (a torch whose CUDA libraries are
   missing fails here, not in the middle of a table), from outside the checkout: the
   ``vrnn_lightning`` folder in the repository root must not stand in for an installed
   package (its dependencies would then be found missing only when a part crashes). What is
   missing is named with the pip command that installs it; exit 2.
2. Whether torch can use the GPUs that nvidia-smi lists. A GPU listed but
   ``torch.cuda.is_available()`` False (a CPU build of torch, a driver older than torch's
   CUDA, a broken container runtime) would otherwise fall through to the CPU fallback and
   exit 0: it prints torch's version, its CUDA version and the driver's, and exits 1.

Otherwise it prints what it found and, last, ``gpus=N`` (N usable CUDA devices; 0: no GPU,
or CUDA_VISIBLE_DEVICES hides them on purpose: the CPU fallback) and exits 0.

    python bench/gpu_preflight.py
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys

# import name -> pip package (pyproject.toml's dependencies; the check imports all of them)
MODULES = {
    "torch": "torch",
    "torchaudio": "torchaudio",
    "lightning": "lightning",
    "omegaconf": "omegaconf",
    "numpy": "numpy",
    "h5py": "h5py",
    "soundfile": "soundfile",
    "matplotlib": "matplotlib",
    "rich": "rich",
    "safetensors": "safetensors",
    "wandb": "wandb[sweeps]",
}
INSTALL_ALL = "python -m pip install -e .  (from the checkout: the project and its dependencies)"
TORCH_HINT = (
    "a CUDA build of torch that this driver supports: python -m pip install torch torchaudio "
    "--index-url https://download.pytorch.org/whl/cu126 (pick the cuXYZ at or below the "
    "driver's CUDA version in nvidia-smi; https://pytorch.org/get-started/locally/)"
)


def missing_modules() -> dict[str, str]:
    """{module: why} for each module that does not import, vrnn_lightning included."""
    missing = {}
    for name in [*MODULES, "vrnn_lightning"]:
        try:
            importlib.import_module(name)
        except Exception as err:  # ImportError, or e.g. OSError from a missing shared library
            missing[name] = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    return missing


def report_missing(missing: dict[str, str]) -> None:
    print(f"gpu_check: {len(missing)} module(s) it needs do not import with {sys.executable}:")
    for name, why in missing.items():
        if name == "vrnn_lightning":
            how = "the project itself is not installed: python -m pip install -e ."
        else:
            how = f"python -m pip install '{MODULES[name]}'"
        print(f"  {name:14} {why}\n  {'':14} install: {how}")
    print(f"To install everything at once: {INSTALL_ALL}")
    if "torch" in missing:
        print(f"torch: {TORCH_HINT}")


def nvidia_smi(*args: str) -> str | None:
    """nvidia-smi's output, or None when it is not there or fails."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        done = subprocess.run([exe, *args], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def listed_gpus() -> list[str]:
    """The GPUs nvidia-smi lists (``nvidia-smi -L``: one ``GPU i: name (UUID: ...)`` a line)."""
    out = nvidia_smi("-L") or ""
    return [line.strip() for line in out.splitlines() if line.strip().startswith("GPU ")]


def hidden_on_purpose() -> bool:
    """CUDA_VISIBLE_DEVICES set to nothing (or -1): GPUs hidden, the CPU fallback wanted."""
    value = os.environ.get("CUDA_VISIBLE_DEVICES")
    return value is not None and value.strip() in ("", "-1")


def main() -> int:
    print(f"python {sys.version.split()[0]} ({sys.executable})", flush=True)
    missing = missing_modules()
    if missing:
        report_missing(missing)
        return 2
    import torch

    gpus = listed_gpus()
    usable = torch.cuda.is_available()
    print(f"torch {torch.__version__}, built for CUDA {torch.version.cuda}; "
          f"nvidia-smi lists {len(gpus)} GPU(s); torch.cuda.is_available() = {usable}")  # fmt: skip
    if gpus and not usable and not hidden_on_purpose():
        driver = nvidia_smi("--query-gpu=driver_version", "--format=csv,noheader") or "?"
        driver = driver.strip().splitlines()[0] if driver.strip() else "?"
        print("gpu_check: nvidia-smi lists a GPU but torch cannot use it:")
        for line in gpus:
            print(f"  {line}")
        print(f"  torch {torch.__version__}, torch.version.cuda = {torch.version.cuda}, "
              f"driver {driver}, CUDA_VISIBLE_DEVICES = "
              f"{os.environ.get('CUDA_VISIBLE_DEVICES', '(unset)')}")  # fmt: skip
        if torch.version.cuda is None:
            print(f"  this torch is a CPU-only build; install {TORCH_HINT}")
        else:
            print(f"  torch's CUDA {torch.version.cuda} needs a driver that supports it (the "
                  f"CUDA version in nvidia-smi's header); else install {TORCH_HINT}")  # fmt: skip
        return 1
    count = torch.cuda.device_count() if usable else 0
    for i in range(count):
        print(f"  cuda:{i} {torch.cuda.get_device_name(i)}")
    print(f"gpus={count}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
