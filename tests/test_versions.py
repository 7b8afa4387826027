"""Version ranges: pyproject.toml's lower bounds, constraints.txt (CI's exact versions) and
``python -m vrnn_lightning.versions``, the check a user of a preinstalled image runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from vrnn_lightning import versions

ROOT = Path(__file__).resolve().parents[1]
REQUIRES_PYTHON, REQUIREMENTS = versions._from_pyproject(ROOT / "pyproject.toml")
DEPENDENCIES = [Requirement(r) for r in REQUIREMENTS if "extra ==" not in r]


def _requirement(name: str) -> Requirement:
    (req,) = [r for r in DEPENDENCIES if r.name == name]
    return req


def test_lightning_floor_has_weights_only_in_fit_and_load_from_checkpoint():
    # Trainer.fit(weights_only=...) and load_from_checkpoint(weights_only=...): Lightning 2.6
    spec = _requirement("lightning").specifier
    assert not spec.contains("2.5.6") and spec.contains("2.6.0")


def test_every_pin_of_constraints_txt_is_in_range_and_pins_every_dependency():
    text = (ROOT / "constraints.txt").read_text()
    assert 'pip install -e ".[dev]" -c constraints.txt' in text
    pins = versions.ci_versions(ROOT / "constraints.txt")
    lines = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    assert len(pins) == len(lines) and all("==" in ln for ln in lines)  # pip freeze lines
    for req in map(Requirement, REQUIREMENTS):  # the extras' too
        pinned = pins.get(canonicalize_name(req.name))
        assert pinned, f"constraints.txt has no {req.name}"
        assert req.specifier.contains(Version(pinned)), f"{req.name}=={pinned} not {req}"


def test_check_says_too_old_missing_and_optional(monkeypatch):
    installed = {"torch": "2.5.1", "lightning": "2.6.6", "wandb": None, "tensorboard": None}
    reqs = ["torch>=2.6", "lightning>=2.6", "wandb[sweeps]>=0.17",
            'tensorboard>=2.15; extra == "tensorboard"', 'pytest>=8; extra == "dev"',
            'numpy>=1.26; python_version < "3"']  # fmt: skip
    checks = versions.check(reqs, {"torch": "2.14.1"}, installed=installed.get)
    got = {c.name: (c.wanted, c.installed, c.ci, c.status, c.bad) for c in checks}
    assert got == {
        "torch": ("torch>=2.6", "2.5.1", "2.14.1", "too old", True),
        "lightning": ("lightning>=2.6", "2.6.6", None, "ok", False),
        "wandb": ("wandb[sweeps]>=0.17", None, None, "missing", True),
        "tensorboard": ("tensorboard>=2.15", None, None, "not installed (optional)", False),
    }  # pytest: the dev extra, not checked; numpy: not for this Python
    assert versions.python_check(">=3.10", "3.9.18").status == "too old"
    assert versions.python_check(">=3.10", "3.12.1").status == "ok"


def test_main_exits_1_naming_what_is_out_of_range(monkeypatch, capsys):
    real = versions._installed
    monkeypatch.setattr(versions, "_installed", lambda n: "2.4.0" if n == "lightning" else real(n))
    assert versions.main([]) == 1
    captured = capsys.readouterr()
    assert "lightning>=2.6" in captured.out and "too old" in captured.out
    assert "lightning 2.4.0 (too old)" in captured.err and '"lightning>=2.6"' in captured.err


def test_the_command_passes_in_this_environment_from_the_checkout_or_the_installed_package(
    tmp_path,
):
    run = subprocess.run(
        [sys.executable, "-m", "vrnn_lightning.versions"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"requirements from {ROOT / 'pyproject.toml'}" in run.stdout
    for req in DEPENDENCIES:
        assert f"{req.name}" in run.stdout
    # without a checkout: the installed package's metadata
    requires_python, reqs, where = versions.requirements(tmp_path)
    assert where == "the installed vrnn-lightning package" and requires_python == ">=3.10"
    assert any(Requirement(r).name == "lightning" for r in reqs)


def test_the_command_imports_none_of_the_packages_it_checks():
    code = (
        "import sys; from vrnn_lightning import versions; versions.main([]); "
        "print(sorted(m for m in ('torch', 'lightning', 'wandb', 'h5py') if m in sys.modules))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.stdout.strip().endswith("[]"), run.stdout + run.stderr
