"""The shape of the package: modules small, and layers that never import upward."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import aiopar

PACKAGE = Path(aiopar.__file__).parent
# The user-facing commands are their own small packages (or modules), not the library.
COMMANDS = {"bench", "demo"}
MOST_LINES = 420  # "about 400"


def _modules() -> dict[str, Path]:
    return {path.stem: path for path in PACKAGE.glob("*.py") if path.stem not in COMMANDS}


def _imports_of(path: Path, modules: set[str]) -> set[str]:
    """The package's modules ``path`` imports anywhere: at the top, inside functions
    (lazy imports) and under ``if TYPE_CHECKING:`` alike."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module is not None:
                found.add(node.module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("aiopar."):
            found.add((node.module or "").split(".")[1])
    return found & modules


def test_the_module_graph_has_no_cycle() -> None:
    modules = _modules()
    graph = {name: _imports_of(path, set(modules)) for name, path in modules.items()}
    try:
        order = list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as error:
        raise AssertionError(f"import cycle among aiopar modules: {error.args[1]}") from None
    # Top down: the public functions, then Pool, then what runs the jobs.
    assert order.index("_functions") > order.index("_pool") > order.index("_maps")
    assert order.index("_maps") > order.index("_pool_base") > order.index("_dispatcher")


def test_no_module_of_the_library_is_over_about_400_lines() -> None:
    sizes = {name: len(path.read_text().splitlines()) for name, path in _modules().items()}
    assert {name: n for name, n in sizes.items() if n > MOST_LINES} == {}
