"""The layout rules of docs/architecture.md, checked: imports go downwards, no cycles, short functions."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "convprop"
BASE = {"errors", "_validation", "_files"}
#: What each top-level package (or module) of convprop may import, besides itself.
MAY_IMPORT = {
    "errors": set(),
    "_validation": {"errors"},
    "_files": {"errors"},
    "engine": BASE,
    "formats": BASE | {"engine"},
    "datasets": BASE | {"engine", "formats"},
    "training": BASE | {"engine", "formats"},
    "plots": BASE | {"engine"},
    "dlt": BASE | {"engine", "formats", "datasets", "training"},
    "sklearn": BASE | {"engine", "training"},
    "cli": BASE | {"engine", "formats", "datasets", "training", "plots", "dlt", "sklearn", "__init__"},
    "__init__": BASE | {"engine", "formats", "datasets", "training"},
    "__main__": {"cli"},
}
MAX_FUNCTION_LINES = 60


def _module(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_imports(path: Path) -> set[str]:
    """convprop modules imported by ``path`` at run time (``if TYPE_CHECKING:`` blocks excluded)."""
    tree = ast.parse(path.read_text())
    skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
            and getattr(node.test, "id", None) == "TYPE_CHECKING" for n in ast.walk(node)}
    module, found = _module(path), set()
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                is_module = (SRC.parent / Path(*sub.split("."))).with_suffix(".py").exists() or \
                    (SRC.parent / Path(*sub.split("."))).is_dir()
                found.add(sub if is_module else target)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m for m in found if m.startswith("convprop") and m != module}


GRAPH = {_module(p): _runtime_imports(p) for p in sorted(SRC.rglob("*.py"))}


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_imports_go_downwards():
    wrong = [f"{m} imports {d}" for m, deps in GRAPH.items() for d in deps
             if _top(d) != _top(m) and _top(d) not in MAY_IMPORT.get(_top(m), set())]
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles():
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in GRAPH.get(v, ()):
            if w not in GRAPH:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in GRAPH:
        if module not in index:
            visit(module)
    assert not cycles, cycles


def _code_lines(node: ast.AST, lines: list[str]) -> int:
    doc = set()
    body = getattr(node, "body", [])
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
            and isinstance(body[0].value.value, str):
        doc = set(range(body[0].lineno, body[0].end_lineno + 1))
    return sum(1 for i in range(node.lineno, node.end_lineno + 1)
               if i not in doc and lines[i - 1].strip() and not lines[i - 1].strip().startswith("#"))


@pytest.mark.parametrize("path", sorted(SRC.rglob("*.py")), ids=lambda p: str(p.relative_to(SRC)))
def test_functions_are_short(path):
    text = path.read_text()
    lines = text.splitlines()
    long = [f"{node.name} (line {node.lineno}): {n} lines of code" for node in ast.walk(ast.parse(text))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and (n := _code_lines(node, lines)) > MAX_FUNCTION_LINES]
    assert not long, long
