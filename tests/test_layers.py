"""The layering rules, checked rather than hoped for: explorer/core imports no Qt and no
torch stack; nothing under explorer/ imports torch, timm, transformers,
sentence_transformers or precompute. Checked two ways: the import-linter contracts in
pyproject.toml, and a scan of every import statement (which also catches imports inside
functions)."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TORCH_STACK = {"torch", "timm", "transformers", "sentence_transformers", "open_clip",
               "precompute"}
QT = {"PySide6", "PyQt5", "PyQt6", "pyqtgraph", "superqt", "qtpy", "shiboken6"}


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
    return out


def test_explorer_never_imports_the_torch_stack():
    bad = {str(p.relative_to(ROOT)): imported_roots(p) & TORCH_STACK
           for p in (ROOT / "explorer").rglob("*.py")}
    assert not {k: v for k, v in bad.items() if v}


def test_core_never_imports_qt():
    bad = {str(p.relative_to(ROOT)): imported_roots(p) & (QT | TORCH_STACK)
           for p in (ROOT / "explorer" / "core").rglob("*.py")}
    assert not {k: v for k, v in bad.items() if v}


def test_scanner_sees_nested_imports(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def f():\n    import torch.nn\n    from PySide6 import QtCore\n")
    assert imported_roots(f) == {"torch", "PySide6"}


def test_import_linter_contracts():
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("import-linter is not installed (pip install -e '.[test]')")
    res = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr


def test_core_imports_without_qt_or_torch():
    code = ("import sys, explorer.core.engine, explorer.core.sweep, explorer.core.tune, "
            "explorer.core.evaluate, explorer.cli;"
            "bad = [m for m in ('torch', 'PySide6', 'timm', 'precompute') if m in sys.modules];"
            "print(bad); sys.exit(1 if bad else 0)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr


def _project_imports(path: Path, package: str) -> set[str]:
    """Modules of `package` that the file imports anywhere (functions included), except
    under `if TYPE_CHECKING:` (annotations only, never executed)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                   and ast.unparse(node.test).endswith("TYPE_CHECKING")
                   for n in ast.walk(node)}
    out = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith(package + ".")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == package:
                out |= {f"{package}.{a.name}" for a in node.names}
            elif node.module.startswith(package + "."):
                out.add(node.module)
    return out


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


@pytest.mark.parametrize("package", ["explorer.gui", "explorer.core", "explorer.core.bundle"])
def test_no_import_cycles(package):
    """The app, the main window and the menus once imported each other (inside
    functions, to dodge the cycle); an application context passed in removes the need."""
    folder = ROOT.joinpath(*package.split("."))
    graph = {f"{package}.{p.stem}": _project_imports(p, package)
             for p in folder.glob("*.py")}
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_cycle_finder_sees_a_cycle_through_a_function_import(tmp_path):
    (tmp_path / "a.py").write_text("def f():\n    from pkg.b import g\n")
    (tmp_path / "b.py").write_text("from pkg import a\n")
    graph = {f"pkg.{p.stem}": _project_imports(p, "pkg") for p in tmp_path.glob("*.py")}
    assert _cycle(graph) == ["pkg.a", "pkg.b", "pkg.a"]
