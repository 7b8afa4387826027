"""The package's boundaries (docs/architecture.md), checked on its imports: nothing imports a
command file, the data package imports nothing above it, and no import circle."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "vrnn_lightning"
COMMANDS = {"prepare", "fit", "evaluate", "sample", "sweep", "export"}
ABOVE_DATA = {"model", "module", "estimators", "training", "evaluation", "checkpoint"}


def imported_modules(path: Path) -> set[str]:
    """Every vrnn_lightning module ``path`` imports (absolute or relative), dotted."""
    package = path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + (base,)).strip(".")
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}  # `from . import evaluate`
    return {m for m in found if m.split(".")[0] == "vrnn_lightning"}


def package_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_the_check_sees_relative_and_absolute_imports():
    files = {p.relative_to(PACKAGE).as_posix(): imported_modules(p) for p in package_files()}
    assert "vrnn_lightning.data.pipeline" in files["data/datamodule.py"]
    assert "vrnn_lightning.model" in files["module.py"]  # `from .model import ...`


def test_no_module_imports_a_command_file():
    offenders = [
        f"{path.relative_to(PACKAGE)} imports {module}"
        for path in package_files()
        for module in imported_modules(path)
        if module.split(".")[1:2]
        and module.split(".")[1] in COMMANDS
        and len(module.split(".")) == 2
    ]
    assert not offenders, offenders


def test_the_data_package_imports_nothing_above_it():
    offenders = [
        f"{path.relative_to(PACKAGE)} imports {module}"
        for path in sorted((PACKAGE / "data").rglob("*.py"))
        for module in imported_modules(path)
        if module.split(".")[1] in ABOVE_DATA | COMMANDS
    ]
    assert not offenders, offenders


def test_readers_do_not_import_the_corpora():
    for reader in ("audio.py", "strokes.py", "source.py", "store.py"):
        imports = imported_modules(PACKAGE / "data" / reader)
        assert not any(m.startswith("vrnn_lightning.data.corpora") for m in imports), reader


def test_no_test_imports_the_benchmarks():
    """Tests check the package; bench/ may import the package, never the other way round."""
    tests = Path(__file__).resolve().parent
    offenders = []
    for path in sorted(tests.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            offenders += [f"{path.name} imports {n}" for n in names if n.split(".")[0] == "bench"]
    assert not offenders, offenders


def test_nothing_cites_a_document_outside_the_repository():
    """Code, configs and docs cite the paper's sections, the original code's files or
    docs/paper.md: never "spec 5.5" or vrnn_spec.md, which a reader of the repository lacks."""
    root = PACKAGE.parent
    files = [
        *root.glob("*.md"),
        *(
            p
            for d in ("vrnn_lightning", "tests", "bench", "conf", "sweeps", "docs")
            for p in (root / d).rglob("*")
            if p.suffix in {".py", ".yaml", ".md"}
        ),
    ]
    pattern = re.compile(r"vrnn_spec|spec\.md|\bspec (section )?§?\d|#\s*spec\b")
    offenders = [
        f"{p.relative_to(root)}:{n}"
        for p in files
        if p.name != "test_layout.py"
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert not offenders, offenders


def import_graph() -> dict[str, set[str]]:
    """module -> the package's modules it imports (lazy imports inside functions included;
    ``from . import x`` in a package's own module is an import of x, not of the package)."""
    modules = {}
    for path in package_files():
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = imported_modules(path)
    return {
        name: {d for d in deps if d in modules and d != name and not name.startswith(d + ".")}
        for name, deps in modules.items()
    }


def test_no_import_circle():
    graph, state, circles = import_graph(), {}, []

    def visit(module, path):
        state[module] = "open"
        for dep in sorted(graph[module]):
            if state.get(dep) == "open":
                circles.append(" -> ".join(path[path.index(dep) :] + [dep]))
            elif dep not in state:
                visit(dep, path + [dep])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not circles, circles
