"""The public surface: what aiopar exports, and that each name is documented."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import aiopar

CONTRACT = {
    "Pool",
    "amap",
    "amap_chunks",
    "imap",
    "submit",
    "gather",
    "remote",
    "tree_reduce",
    "shutdown",
    "worker_state",
    "TaskRef",
    "WorkerCrashedError",
    "as_completed",
    "wait",
    "starmap",
    "put",
}


def test_init_reexports_exactly_all() -> None:
    source = Path(aiopar.__file__).read_text()
    tree = ast.parse(source)
    imported = {
        alias.asname or alias.name
        for node in tree.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert imported == set(aiopar.__all__)
    assert set(aiopar.__all__) >= CONTRACT
    others = [n for n in tree.body if not isinstance(n, ast.ImportFrom | ast.Assign | ast.Expr)]
    assert others == [], "aiopar/__init__.py holds only re-exports and __all__"


def test_version_is_exported_as_a_string() -> None:
    assert "__version__" in aiopar.__all__
    assert isinstance(aiopar.__version__, str) and aiopar.__version__


def test_every_public_name_has_a_docstring() -> None:
    for name in aiopar.__all__:
        if name == "__version__":
            continue  # a string: its docstring would be str's
        obj = getattr(aiopar, name)
        assert inspect.getdoc(obj), f"aiopar.{name} has no docstring"


def test_pool_methods_and_module_functions_match() -> None:
    for name in (
        "amap",
        "amap_chunks",
        "imap",
        "starmap",
        "submit",
        "tree_reduce",
        "gather",
        "remote",
        "put",
    ):
        method = inspect.signature(getattr(aiopar.Pool, name))
        function = inspect.signature(getattr(aiopar, name))
        method_params = [p for p in method.parameters if p != "self"]
        function_params = [p for p in function.parameters if p != "pool"]
        assert method_params == function_params, name
        assert inspect.getdoc(getattr(aiopar.Pool, name)), name


def test_private_modules_declare_all() -> None:
    package = Path(aiopar.__file__).parent
    for path in package.glob("*.py"):
        if path.name in {"__init__.py", "__main__.py"}:
            continue
        tree = ast.parse(path.read_text())
        names = {
            t.id
            for n in tree.body
            if isinstance(n, ast.Assign)
            for t in n.targets
            if isinstance(t, ast.Name)
        }
        assert "__all__" in names, f"{path.name} has no __all__"
