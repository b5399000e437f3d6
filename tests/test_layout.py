"""The shape of the package: no import loop, one backend per module."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import gilfree
from gilfree.backends import BACKENDS, Backend

PACKAGE = Path(gilfree.__file__).parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


#: The compiled modules written in C, outside the package folder; they
#: import nothing of gilfree's.
C_MODULES = {"gilfree._gilstate": PACKAGE.parent / "csrc" / "gilstate.c"}


def _modules() -> dict[str, Path]:
    """Every module of the package, the compiled ones (``.pyx``, C) too."""
    found = {_module_name(p): p for p in [*PACKAGE.rglob("*.py"), *PACKAGE.rglob("*.pyx")]}
    return {**found, **C_MODULES}


def import_graph() -> dict[str, set[str]]:
    """Module -> the gilfree modules it imports, anywhere in its source
    (inside functions too: a lazy import is still an edge)."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        if path.suffix in (".pyx", ".c"):
            continue  # compiled: they import nothing of gilfree's
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # ``from gilfree import _countdown`` imports the submodule;
                # ``from gilfree import __version__`` the package itself.
                targets = [
                    f"{node.module}.{a.name}"
                    if f"{node.module}.{a.name}" in modules
                    else node.module
                    for a in node.names
                ]
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]  # gilfree.x.y -> gilfree.x
                if target and target != name:
                    graph[name].add(target)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_import_graph_has_no_loop() -> None:
    graph = import_graph()
    assert "gilfree.backends.processes" in graph  # the walk found the package
    cycle = _cycle(graph)
    assert cycle is None, " -> ".join(cycle or [])


def test_the_loop_finder_finds_a_loop() -> None:
    # The check above must be able to fail.
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize(
    "path", sorted(p for p in _modules().values() if p.suffix == ".py"), ids=lambda p: p.name
)
def test_no_module_holds_two_backends(path: Path) -> None:
    tree = ast.parse(path.read_text())
    names = {type(b).__name__ for b in BACKENDS.values()} | {"ExecutorBackend"}
    defined = [n.name for n in tree.body if isinstance(n, ast.ClassDef) and n.name in names]
    assert len(defined) <= 1, defined


def test_every_backend_lives_in_its_own_module() -> None:
    for backend in BACKENDS.values():
        module = type(backend).__module__
        assert module.startswith("gilfree.backends."), module
        assert isinstance(backend, Backend)


# ------------------------------------------------------------------- sizes

#: No module of the package is longer than this many lines.
MOST_MODULE_LINES = 600
#: No function or method is longer than this many lines...
MOST_FUNCTION_LINES = 80
#: ...but the argparse tree, which reads as a table of options.
LONG_BY_DESIGN = {("gilfree/cli/parser.py", "build_parser")}


def _sizes() -> tuple[list[str], list[str]]:
    root = PACKAGE.parent
    modules, functions = [], []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        name = path.relative_to(root).as_posix()
        if len(text.splitlines()) > MOST_MODULE_LINES:
            modules.append(f"{name}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MOST_FUNCTION_LINES and (name, node.name) not in LONG_BY_DESIGN:
                    functions.append(f"{name}: {node.name}, {length} lines")
    return modules, functions


def test_no_module_or_function_is_too_long_to_see_across() -> None:
    modules, functions = _sizes()
    assert modules == [], f"modules over {MOST_MODULE_LINES} lines: split them"
    assert functions == [], f"functions over {MOST_FUNCTION_LINES} lines: split them"


def test_the_size_check_sees_the_long_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    # With lower limits, the package's own longest module and functions are listed.
    monkeypatch.setattr(sys.modules[__name__], "MOST_MODULE_LINES", 500)
    monkeypatch.setattr(sys.modules[__name__], "MOST_FUNCTION_LINES", 60)
    modules, functions = _sizes()
    assert any(m.startswith("gilfree/report.py") for m in modules)
    assert any("thread_costs" in f for f in functions)
