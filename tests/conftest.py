"""What many tests share: the tiny run of conf/debug.yaml.

    fit_main(tiny(tmp_path, "trainer.max_epochs=1"))       # vrnn-fit's arguments
    cfg = tiny_config("model.z_dim=2")                      # the resolved config
    TINY_SETTINGS                                           # its keys as a flat dict (sweeps)
    VRNN("vrnn_gauss", x_dim=4, **TINY_MODEL)               # its model sizes, no Lightning
    fsdd_subset(tmp_path / "fsdd", 50, every=50)            # real recordings, linked (FSDD)

Tests marked ``@pytest.mark.slow`` (DDP, bf16, real data, whole runs resumed or swept; the
marker is registered in pyproject.toml) are left out by ``pytest -m "not slow"``, the inner
loop; CI's plain ``pytest`` runs everything.
"""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path

import pytest
import yaml
from omegaconf import DictConfig

from vrnn_lightning.config import load_config

REPO = Path(__file__).resolve().parents[1]
DEBUG_CONFIG = REPO / "conf" / "debug.yaml"
# real data, read in place: shared/ beside the checkout, or where $VRNN_SHARED says (a git
# worktree elsewhere); the tests that need it skip without it
SHARED_DATA = Path(os.environ.get("VRNN_SHARED", REPO.parent / "shared")) / "data"
FSDD_DIR = SHARED_DATA / "fsdd" / "recordings"
GW_DIR = SHARED_DATA / "gw-online"


@pytest.fixture(autouse=True)
def _downloads_stay_local(monkeypatch):
    """No test downloads from the internet (CI is offline): data.download may reach only a
    server that the test itself runs on 127.0.0.1."""
    from vrnn_lightning.data import download

    real = download._open

    def local_only(url, headers):
        host = urllib.parse.urlsplit(url).hostname
        if host not in ("127.0.0.1", "localhost"):
            raise AssertionError(f"a test tried to download {url}; pass data.root= instead")
        return real(url, headers)

    monkeypatch.setattr(download, "_open", local_only)


def tiny(tmp_path: Path, *extra: str) -> list[str]:
    """vrnn-fit's arguments for the tiny run, its prepared data under ``tmp_path``."""
    return ["--config", str(DEBUG_CONFIG), f"data.cache_dir={tmp_path / 'cache'}", *extra]


def tiny_config(*overrides: str) -> DictConfig:
    """The tiny run's resolved config with ``key=value`` overrides."""
    return load_config(DEBUG_CONFIG, list(overrides))


def _flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


_DEBUG = yaml.safe_load(DEBUG_CONFIG.read_text())
# conf/debug.yaml as dotted keys (what a sweep passes as parameters), its name aside
TINY_SETTINGS = _flat(_DEBUG)
TINY_SETTINGS.pop("name")
# conf/debug.yaml's model sizes as VRNN keyword arguments, its variant aside
TINY_MODEL = {key: value for key, value in _DEBUG["model"].items() if key != "variant"}


def fsdd_subset(folder: Path, n: int, every: int = 1) -> Path:
    """``folder``, made, holding links to ``n`` FSDD recordings: every ``every``-th by name
    (every=50 reaches all five speakers)."""
    folder.mkdir()
    for path in sorted(FSDD_DIR.glob("*.wav"))[::every][:n]:
        (folder / path.name).symlink_to(path)
    return folder
