"""The package's shape: the layers contract of pyproject.toml, no import cycle, small modules."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent
MAX_LINES = 700
MAX_ROOT_MODULES = 8


def test_the_layers_contract_holds():
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint, "import-linter is not installed: pip install -r requirements-dev.txt"
    done = subprocess.run([lint], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each an import cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in graph.modules or imported.split(".")[0] not in ("flows", "dashboard"):
                continue
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for module in sorted(graph.modules):
        if module.split(".")[0] in ("flows", "dashboard") and module not in index:
            visit(module)
    return cycles


def test_no_import_cycle():
    graph = grimp.build_graph("flows", "dashboard")
    assert _cycles(graph) == []


def test_a_cycle_is_found():
    graph = grimp.build_graph("flows", "dashboard")
    graph.add_import(importer="flows.schema", imported="flows.config")  # config reaches schema
    assert any("flows.schema" in cycle for cycle in _cycles(graph))


def _python_files() -> list[Path]:
    folders = ("flows", "dashboard", "blocks", "bench", "terraform", "tests")
    return sorted(path for folder in folders for path in (ROOT / folder).rglob("*.py"))


def test_no_module_over_700_lines():
    long = {
        str(path.relative_to(ROOT)): lines
        for path in _python_files()
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}


def test_few_modules_at_the_root_of_flows():
    root = sorted(path.name for path in (ROOT / "flows").glob("*.py"))
    assert len(root) <= MAX_ROOT_MODULES, root


def test_package_init_files_hold_a_docstring_only():
    """Shared types live in modules of their own, so importing a package imports nothing."""
    for init in (ROOT / "flows").rglob("__init__.py"):
        body = ast.parse(init.read_text(encoding="utf-8")).body
        assert body and isinstance(body[0], ast.Expr), f"{init} has no docstring"
        assert len(body) == 1, f"{init} holds code; move it to a module of its own"
