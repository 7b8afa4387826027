"""The settings a GPU cluster run meets, checked on this CPU: one device unless asked, the
precisions the fused loop can run, TF32 on CUDA, an evaluation memory budget from the GPU's
free memory, one dtype through a DDP gather, and no private attribute of Lightning, torch
or W&B anywhere in the package."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
from conftest import DEBUG_CONFIG, REPO, tiny_config

from vrnn_lightning import estimators
from vrnn_lightning.config import ConfigError, load_config
from vrnn_lightning.fit import main as fit_main
from vrnn_lightning.tbptt import CarriedState
from vrnn_lightning.training import matmul_precision


def test_one_device_unless_asked():
    # "auto" made every vrnn-fit on an 8-GPU node an 8-rank run with an 8x global batch
    assert load_config().trainer.devices == 1


@pytest.mark.parametrize("precision", ["bf16-true", "16-true", "transformer-engine"])
def test_precisions_the_fused_loop_cannot_run_are_a_usage_error(tmp_path, precision, capsys):
    out = tmp_path / "run"
    args = ["--config", str(DEBUG_CONFIG), f"out_dir={out}", f"trainer.precision={precision}"]
    assert fit_main(args) == 2
    assert "trainer.precision" in capsys.readouterr().err
    assert not out.exists(), "nothing written"


def test_tf32_on_cuda_unless_the_config_says_otherwise():
    cfg = tiny_config("trainer.accelerator=auto")
    assert matmul_precision(cfg, cuda=True) == "high"
    assert matmul_precision(cfg, cuda=False) is None  # a CPU keeps IEEE float32
    assert matmul_precision(tiny_config("trainer.accelerator=cpu"), cuda=True) is None
    highest = tiny_config("trainer.accelerator=auto", "trainer.float32_matmul_precision=highest")
    assert matmul_precision(highest, cuda=True) == "highest"
    with pytest.raises(ConfigError, match="trainer.float32_matmul_precision"):
        tiny_config("trainer.float32_matmul_precision=fast")


def test_eval_memory_auto_is_a_share_of_the_gpus_free_memory(monkeypatch):
    assert estimators.memory_budget_gb("auto", "cpu") == estimators.CPU_MEMORY_GB
    assert estimators.memory_budget_gb(12, "cpu") == 12.0
    assert estimators.memory_budget_gb(None, "cpu") is None
    free = {"bytes": 141 * 2**30}  # an H200, nearly empty
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free["bytes"], 2**40))
    assert estimators.memory_budget_gb("auto", "cuda:0") == pytest.approx(0.6 * 141)
    free["bytes"] = 2**28  # nearly full: a floor, never zero
    assert estimators.memory_budget_gb("auto", "cuda:0") == 0.5
    with pytest.raises(ConfigError, match="eval.memory_gb"):
        tiny_config("eval.memory_gb=lots")


def test_a_bf16_carried_state_and_float32_zeros_gather_as_one_dtype():
    gathered = []

    def all_gather(t):
        gathered.append(t.dtype)
        return t

    carried = CarriedState(reset_every=4)
    carried.keep((torch.ones(2, 3, dtype=torch.bfloat16),) * 2, 0)
    with_state = carried.state_dict(all_gather, 1, torch.zeros(2, 3))
    carried.forget()
    without = carried.state_dict(all_gather, 1, torch.zeros(2, 3))
    assert with_state["h"].dtype == without["h"].dtype == torch.float32
    assert gathered[0] == gathered[4] == torch.float32


# ---- public APIs only ------------------------------------------------------------------------
LIBRARIES = ("lightning", "torch", "wandb", "sweeps", "omegaconf", "h5py")
GETTERS = ("getattr", "hasattr")
INTERNAL = ("wandb.sdk",)  # the agent's and the SDK's internals
ALLOWED = {"_exit"}  # os._exit: documented (in a child after fork)


def _private_uses(path: Path) -> list[str]:
    """``x._name`` where no class or function of the package defines ``_name``, a private
    name imported from a library, or ``getattr(x, "_name")``."""
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in LIBRARIES:
            parts = (node.module or "").split(".") + [a.name for a in node.names]
            found += [f"{path.name}:{node.lineno} import {p}" for p in parts if _private(p)]
            if (node.module or "").startswith(INTERNAL):  # no underscore, but internal
                found.append(f"{path.name}:{node.lineno} import {node.module}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if any(_private(p) for p in alias.name.split(".")):
                    found.append(f"{path.name}:{node.lineno} import {alias.name}")
        elif isinstance(node, ast.Attribute) and _private(node.attr):
            if node.attr not in OWN_NAMES and node.attr not in ALLOWED:
                found.append(f"{path.name}:{node.lineno} .{node.attr}")
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) in GETTERS:
            name = node.args[1] if len(node.args) > 1 else None
            text = str(name.value) if isinstance(name, ast.Constant) else ""
            if _private(text) and text not in OWN_NAMES:
                found.append(f"{path.name}:{node.lineno} getattr {text}")
    return found


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _own_names(files: list[Path]) -> set[str]:
    """Every name the package itself defines: functions, classes, attributes it assigns."""
    names = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.alias) and node.asname:
                names.add(node.asname)
    return names


PACKAGE_FILES = sorted((REPO / "vrnn_lightning").rglob("*.py"))
OWN_NAMES = _own_names(PACKAGE_FILES)


def test_the_package_uses_no_private_attribute_of_its_libraries():
    found = [use for path in PACKAGE_FILES for use in _private_uses(path)]
    assert found == []


def test_the_private_use_check_finds_what_it_looks_for(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from torch.utils._python_dispatch import TorchDispatchMode\n"
        "trainer._signal_connector.received_sigterm\n"
        'getattr(logger, "_wandb_init", {})\n'
        "from wandb.sdk.launch.sweeps.utils import create_sweep_command\n"
    )
    assert len(_private_uses(sample)) == 4


def test_only_rank_zero_writes_the_run_folders_files(tmp_path, monkeypatch):
    # under DDP every rank runs train(); each wrote config.yaml (and could race on it)
    from lightning.pytorch.utilities import rank_zero_only

    from vrnn_lightning.training import train

    out = tmp_path / "run"
    cfg = tiny_config(f"data.cache_dir={tmp_path / 'cache'}", f"out_dir={out}")
    cfg.trainer.max_steps = 2
    monkeypatch.setattr(rank_zero_only, "rank", 1)  # as rank 1 of a DDP run sees itself
    train(cfg)
    assert not (out / "config.yaml").exists() and not (out / "finished.json").exists()
