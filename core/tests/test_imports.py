"""The core's modules import one another in one direction: no import circle, counting the imports
made inside a function and those for type checking only. A module in a circle can be neither
read nor changed alone, and importing the package itself from one of its modules is a circle
through everything the package re-exports."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

import smplcore

PACKAGE = Path(smplcore.__file__).parent


def module_name(path: Path) -> str:
    return "smplcore" if path.stem == "__init__" else f"smplcore.{path.stem}"


def imported(path: Path, modules: set[str]) -> set[str]:
    """The core's modules that ``path`` imports (the package itself for a name it re-exports)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in modules}
        elif isinstance(node, ast.ImportFrom) and node.module in modules:
            names = {f"{node.module}.{alias.name}" for alias in node.names}
            found |= (names & modules) or {node.module}
    return found - {module_name(path)}


def import_graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.glob("*.py"))
    modules = {module_name(path) for path in paths}
    return {module_name(path): imported(path, modules) for path in paths}


def test_no_module_of_the_core_imports_one_that_imports_it() -> None:
    graph = import_graph()
    assert graph["smplcore.errors"] >= {"smplcore._response"}  # the graph is read at all
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as error:
        pytest.fail(f"an import circle in the core: {' -> '.join(error.args[1])}")


def test_a_circle_is_found(tmp_path: Path) -> None:
    (tmp_path / "errors.py").write_text("from smplcore.jsonapi import JsonApiResponse\n")
    (tmp_path / "jsonapi.py").write_text("def f():\n    from smplcore import errors\n")
    modules = {"smplcore", "smplcore.errors", "smplcore.jsonapi"}
    graph = {module_name(path): imported(path, modules) for path in tmp_path.glob("*.py")}
    with pytest.raises(CycleError):
        TopologicalSorter(graph).prepare()
