"""The tree's rules, checked on the source: stages as packages, front ends apart from the library and from each
other, no import circles, short modules and functions."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FRONT_ENDS = ("rag.cli", "rag.server", "ui")
FRONT_END_LIBRARIES = ("typer", "click", "fastapi", "starlette", "sse_starlette", "uvicorn", "gradio", "rich")
# The only ways one front end reaches another: `rag serve` starts the server, and the server hosts the UI.
LAUNCHES = {("rag.cli.main", "rag.server.app"), ("rag.server.app", "ui.app"), ("rag.server.app", "ui.render")}
MAX_MODULE_LINES = 350
MAX_FUNCTION_LINES = 60
MAX_TOP_LEVEL_MODULES = 10


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def sources() -> dict[str, Path]:
    return {module_name(p): p for folder in ("rag", "ui") for p in sorted((ROOT / folder).rglob("*.py"))}


MODULES = sources()


def imports_of(name: str, path: Path) -> set[str]:
    """Every module `name` imports, at the top or inside a function, resolved to a module of this tree where it
    is one (`from rag import prompts` is rag.prompts), else the outside library's top-level name."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
    return {m if m in MODULES else m.split(".")[0] for m in found}


GRAPH = {name: imports_of(name, path) - {name} for name, path in MODULES.items()}


def front_end(name: str) -> str | None:
    if name == "rag.__main__":  # `python -m rag` is the CLI
        return "rag.cli"
    return next((f for f in FRONT_ENDS if name == f or name.startswith(f + ".")), None)


def test_the_library_imports_no_front_end_and_no_front_end_library() -> None:
    wrong = {(m, i) for m, deps in GRAPH.items() if front_end(m) is None
             for i in deps if front_end(i) or i in FRONT_END_LIBRARIES}
    assert not wrong, f"library modules importing front ends: {sorted(wrong)}"


def test_front_ends_share_the_library_not_each_other() -> None:
    crossing = {(m, i) for m, deps in GRAPH.items() for i in deps
                if front_end(m) and front_end(i) and front_end(m) != front_end(i)}
    assert crossing <= LAUNCHES, f"front ends importing each other: {sorted(crossing - LAUNCHES)}"


def _cycle(graph: dict[str, set[str]]) -> list[str]:
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return []


def stage_of(name: str) -> str:
    """rag.search.retrieve → rag.search; a loose module at the top (rag.config) is its own node."""
    parts = name.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 or (ROOT / Path(*parts) / "__init__.py").is_file() else name


@pytest.mark.parametrize("level", ["module", "stage"])
def test_no_import_circles(level: str) -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    for module, deps in GRAPH.items():
        source = module if level == "module" else stage_of(module)
        for dep in deps:
            if dep in MODULES and dep != "rag":  # the root package only gathers the public names
                target = dep if level == "module" else stage_of(dep)
                if target != source:
                    graph[source].add(target)
    assert not _cycle(graph), f"import circle: {' → '.join(_cycle(graph))}"


def test_the_top_of_the_package_holds_only_the_shared_ground() -> None:
    loose = [p.name for p in (ROOT / "rag").glob("*.py")]
    assert len(loose) <= MAX_TOP_LEVEL_MODULES, loose


def test_every_stage_says_what_it_does_in_its_init() -> None:
    for init in sorted((ROOT / "rag").glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert doc and len(doc) > 40, f"{init.relative_to(ROOT)} has no docstring saying what the stage does"


def test_modules_and_functions_stay_short() -> None:
    long_modules, long_functions = [], []
    for name, path in MODULES.items():
        text = path.read_text(encoding="utf-8")
        if text.count("\n") > MAX_MODULE_LINES:
            long_modules.append(name)
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long_functions.append(f"{name}.{node.name} ({length} lines)")
    assert not long_modules, long_modules
    assert not long_functions, long_functions
