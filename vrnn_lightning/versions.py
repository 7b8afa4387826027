"""``python -m vrnn_lightning.versions``: do the installed packages fit the project's ranges?

For a preinstalled image (a cluster's PyTorch container): run it from the checkout before
``pip install``, or after. Each requirement of pyproject.toml (the checkout's, else the
installed package's metadata) is printed with the installed version, the version CI ran
(constraints.txt, when the checkout has it) and ok / too old / too new / missing. Exit 1 when
Python or any required package is out of range, or an optional one that is installed is;
0 otherwise. Needs only the standard library and ``packaging``; it imports none of the
packages it checks (importing torch on a login node is slow, and may fail).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

DIST = "vrnn-lightning"
ROOT = Path(__file__).resolve().parents[1]  # the checkout, when run from one
SKIPPED_EXTRAS = ("dev",)  # tests and lint: not what a run needs


@dataclass
class Check:
    name: str
    wanted: str  # the requirement as written, e.g. "wandb[sweeps]>=0.17"
    installed: str | None
    status: str  # ok, too old, too new, missing, not installed (optional)
    ci: str | None = None  # the version in constraints.txt
    extra: str | None = None  # the optional extra that asks for it

    @property
    def bad(self) -> bool:
        return self.status in ("too old", "too new", "missing", "out of range")


def _from_pyproject(path: Path) -> tuple[str, list[str]] | None:
    """(requires-python, requirement strings with extras as markers) of a checkout."""
    try:
        import tomllib  # Python 3.11+
    except ImportError:
        return None
    try:
        project = tomllib.loads(path.read_text())["project"]
    except (OSError, ValueError, KeyError):
        return None
    if project.get("name") != DIST:
        return None
    reqs = list(project.get("dependencies", []))
    for extra, items in project.get("optional-dependencies", {}).items():
        reqs += [f'{r}; extra == "{extra}"' for r in items]
    return project.get("requires-python", ""), reqs


def _from_metadata() -> tuple[str, list[str]] | None:
    try:
        meta = metadata.metadata(DIST)
    except metadata.PackageNotFoundError:
        return None
    return meta.get("Requires-Python", ""), list(metadata.requires(DIST) or [])


def requirements(root: Path = ROOT) -> tuple[str, list[str], str]:
    """(requires-python, requirement strings, where they were read)."""
    found = _from_pyproject(root / "pyproject.toml")
    if found:
        return (*found, str(root / "pyproject.toml"))
    found = _from_metadata()
    if found:
        return (*found, f"the installed {DIST} package")
    raise SystemExit(
        f"vrnn_lightning.versions: no pyproject.toml of {DIST} at {root} and no installed "
        f"{DIST} package: run it from the checkout (python -m vrnn_lightning.versions)"
    )


def ci_versions(path: Path) -> dict[str, str]:
    """name -> version of each ``name==version`` line of a constraints file."""
    from packaging.utils import canonicalize_name

    out = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            name, sep, version = line.split("#", 1)[0].strip().partition("==")
            if sep:
                out[canonicalize_name(name)] = version.strip()
    return out


def _installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def check(reqs: list[str], ci: dict[str, str] | None = None, installed=None) -> list[Check]:
    """One Check a requirement (optional extras included, SKIPPED_EXTRAS left out);
    ``installed``: name -> version or None (default: this environment's)."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
    from packaging.version import InvalidVersion, Version

    ci, installed = ci or {}, installed or _installed
    out: list[Check] = []
    seen: set[str] = set()
    for text in reqs:
        req = Requirement(text)
        extra = None
        if req.marker is not None:
            extras = [e for e in _extras(text) if req.marker.evaluate({"extra": e})]
            if not extras and not req.marker.evaluate({"extra": ""}):
                continue  # another platform or Python
            extra = extras[0] if extras else None
            if extra in SKIPPED_EXTRAS:
                continue
        key = canonicalize_name(req.name)
        if key in seen:  # tensorboard: in two extras
            continue
        seen.add(key)
        have = installed(req.name)
        if have is None:
            status = "not installed (optional)" if extra else "missing"
        else:
            try:
                fits = req.specifier.contains(Version(have), prereleases=True)
            except InvalidVersion:
                fits = False
            status = "ok" if fits else _direction(req.specifier, have)
        wanted = req.name + (f"[{','.join(sorted(req.extras))}]" if req.extras else "")
        wanted += str(req.specifier)
        out.append(Check(req.name, wanted, have, status, ci.get(key), extra))
    return out


def _extras(text: str) -> list[str]:
    """The extra names a marker compares with (``extra == "x"``)."""
    import re

    return re.findall(r"""extra\s*==\s*['"]([^'"]+)['"]""", text)


def _direction(specifier, have: str) -> str:
    from packaging.version import Version

    v = Version(have)
    lows = [Version(s.version) for s in specifier if s.operator in (">=", ">", "~=", "==")]
    if lows and v < max(lows):
        return "too old"
    return "too new" if any(s.operator in ("<", "<=") for s in specifier) else "out of range"


def python_check(requires_python: str, version: str | None = None) -> Check:
    from packaging.specifiers import SpecifierSet

    version = version or ".".join(map(str, sys.version_info[:3]))
    spec = SpecifierSet(requires_python)
    status = "ok" if spec.contains(version) else _direction(spec, version)
    return Check("python", f"python{spec}", version, status)


def table(checks: list[Check]) -> str:
    rows = [("requirement", "installed", "CI ran", "status")]
    for c in checks:
        wanted = f"{c.wanted} (extra {c.extra})" if c.extra else c.wanted
        rows.append((wanted, c.installed or "-", c.ci or "-", c.status))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join("  ".join(x.ljust(w) for x, w in zip(r, widths, strict=True)).rstrip()
                     for r in rows)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vrnn_lightning.versions",
        description="Check the installed packages against the project's version ranges.",
    )
    parser.add_argument(
        "--root", type=Path, default=ROOT, help="the checkout (default: this package's)"
    )
    args = parser.parse_args(argv)
    try:
        import packaging  # noqa: F401
    except ImportError:
        print("vrnn_lightning.versions: needs packaging: pip install packaging", file=sys.stderr)
        return 1
    requires_python, reqs, where = requirements(args.root)
    checks = [python_check(requires_python)] if requires_python else []
    checks += check(reqs, ci_versions(args.root / "constraints.txt"))
    print(f"requirements from {where}\n")
    print(table(checks))
    bad = [c for c in checks if c.bad]
    if bad:
        names = ", ".join(f"{c.name} {c.installed or ''} ({c.status})" for c in bad)
        fix = " ".join(f'"{c.wanted}"' for c in bad if c.name != "python")
        print(f"\n{len(bad)} out of range: {names}.", file=sys.stderr)
        if fix:
            print(
                f"Install versions in range (pip install {fix}), or make a fresh venv "
                'with the versions CI ran: pip install -e ".[dev]" -c constraints.txt',
                file=sys.stderr,
            )
        return 1
    print("\nall installed versions are in range")
    return 0


if __name__ == "__main__":
    sys.exit(main())
