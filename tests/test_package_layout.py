"""The package's layout rules (DESIGN.md, "Layout"): no import loop among affectlib's modules, no
module-level import after the first definition, an import inside a function only with a comment
saying why it is deferred, and no module over 600 lines but the face renderer."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "affectlib"
MAX_LINES = 600
ONE_JOB_EXCEPTIONS = {"data/render.py"}  # the face renderer: one job, kept whole


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported(node: ast.Import | ast.ImportFrom, name: str, is_package: bool, known) -> set[str]:
    """The affectlib modules an import statement of module ``name`` loads."""
    if isinstance(node, ast.Import):
        return {a.name for a in node.names if a.name in known}
    if node.level:
        base = name.split(".") if is_package else name.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    found = {target} if target in known else set()
    return found | {f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in known}


def import_graph() -> dict[str, set[str]]:
    known = modules()
    graph = {}
    for name, path in known.items():
        tree = ast.parse(path.read_text())
        deps: set[str] = set()
        for node in tree.body:  # module level only: deferred imports cannot form a loop at import
            if isinstance(node, ast.Import | ast.ImportFrom):
                deps |= imported(node, name, path.name == "__init__.py", known)
        graph[name] = deps - {name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}

    def visit(u: str, stack: list[str]) -> list[str] | None:
        state[u] = 1
        stack.append(u)
        for v in sorted(graph[u]):
            if state.get(v) == 1:
                return stack[stack.index(v) :] + [v]
            if not state.get(v) and (loop := visit(v, stack)):
                return loop
        stack.pop()
        state[u] = 2
        return None

    for u in sorted(graph):
        if not state.get(u) and (loop := visit(u, [])):
            return loop
    return None


def test_the_cycle_finder_finds_a_loop_and_accepts_a_tree():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_graph_sees_the_package_imports():
    graph = import_graph()
    assert "affectlib.train_config" in graph["affectlib.train"]
    assert "affectlib.losses" in graph["affectlib.methods.mfar"]


def test_no_import_loop():
    assert find_cycle(import_graph()) is None


@pytest.mark.parametrize("name", sorted(modules()))
def test_imports_sit_at_the_top_and_deferred_ones_say_why(name):
    path = modules()[name]
    source = path.read_text()
    lines = source.splitlines()
    tree = ast.parse(source)
    defined = False
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            defined = True
        elif defined and isinstance(node, ast.Import | ast.ImportFrom):
            pytest.fail(f"{path}:{node.lineno}: a module-level import after a definition")
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for inner in ast.walk(node):
            if isinstance(inner, ast.Import | ast.ImportFrom):
                here = lines[inner.lineno - 1]
                above = lines[inner.lineno - 2] if inner.lineno > 1 else ""
                assert "deferred" in here or "deferred" in above, (
                    f"{path}:{inner.lineno}: an import inside a function without a comment "
                    "saying why it is deferred"
                )


@pytest.mark.parametrize("name", sorted(modules()))
def test_no_module_is_over_the_size_limit(name):
    path = modules()[name]
    rel = path.relative_to(PACKAGE).as_posix()
    n = len(path.read_text().splitlines())
    assert rel in ONE_JOB_EXCEPTIONS or n <= MAX_LINES, f"{rel}: {n} lines (limit {MAX_LINES})"
