"""Would new worker processes run the caller's work again? The check of the main module.

With the ``forkserver`` and ``spawn`` start methods, multiprocessing prepares each new
worker by running the parent's main module again under the name ``__mp_main__``
(``multiprocessing.spawn.get_preparation_data`` decides what to run,
``_fixup_main_from_path`` / ``_fixup_main_from_name`` run it in the child):

* ``python script.py``: ``__main__.__file__`` is run again (``runpy.run_path``);
* ``python -m package.module``: that module is run again (``runpy.run_module``), but not a
  package's ``__main__``, which multiprocessing leaves alone (``python -m aiopar``);
* ``python -c``, a REPL, IPython and Jupyter (no ``__main__.__file__``): nothing is run
  again; functions defined there reach the workers by value, through cloudpickle;
* code read from standard input (``python - < script.py``): ``__main__.__file__`` is
  ``"<stdin>"``, which multiprocessing tries to run again and cannot, in every worker.
  So does a ``__file__`` that names a notebook (some notebook front ends set one).

What runs again is the main module's *top level*, with ``__name__ == "__mp_main__"``.
The statement of the top level that is running now in the parent is on the main
thread's stack: the frame of the main file's ``<module>`` code, whose globals are
``__main__.__dict__``. It runs again in every worker unless it sits in a branch of an
``if`` on ``__name__`` that ``"__mp_main__"`` does not take (``if __name__ ==
"__main__":``). The file is parsed, not searched: comments and strings do not count.

:func:`check_main_module` runs in the caller's thread when a pool opens (cheap: the
parse is cached per file version) and raises one clear error there, instead of letting
every worker fail at start-up with a traceback of its own.
"""

from __future__ import annotations

import ast
import multiprocessing
import multiprocessing.process
import os
import sys
import threading
import tokenize
import types
from typing import Any

__all__ = ["check_main_module", "main_goes_by_value"]

_GUARD = 'if __name__ == "__main__":'
# Tests on these names decide in the child differently than in the parent: trust them
# as guards when we cannot evaluate them.
_PROCESS_NAMES = frozenset({"__name__", "current_process", "parent_process"})
_parsed: dict[tuple[str, int, int], ast.Module | None] = {}


def check_main_module() -> None:
    """Refuse to start workers that would run the caller's work again, with the fix.

    Raises:
        RuntimeError: when this process is a worker importing the main module, when the
            main module cannot be run again by workers (read from standard input, a
            notebook's ``__file__``), or when aiopar is called from a statement of the
            main script's top level that workers would run again (no
            ``if __name__ == "__main__":`` around it).
    """
    process = multiprocessing.current_process()
    if getattr(process, "_inheriting", False):
        raise RuntimeError(
            "aiopar was called while a new worker process was importing the main module "
            "(workers import it again with start methods forkserver and spawn); put the "
            f"code that starts work under `{_GUARD}`"
        )
    main = sys.modules.get("__main__")
    if main is None:
        return
    target = _rerun_target(main)
    if target is None:
        return
    tree = _parse(target)
    if isinstance(tree, str):
        raise RuntimeError(tree)
    if tree is None:  # compiled code: runnable again, but we cannot read its guard
        return
    frame = _top_level_frame(main, target)
    if frame is None:  # the top level has finished: importing it again starts nothing
        return
    line = frame.f_lineno
    if line is None or _guarded(tree.body, line):
        return
    name = os.path.basename(target)
    raise RuntimeError(
        f"{name} starts aiopar work from line {line} of its top level, which worker "
        f"processes run again when they import {name} (start methods forkserver and "
        f"spawn do); put the code that starts work under `{_GUARD}` in {name} ({target})"
    )


def main_goes_by_value() -> bool:
    """Whether what is defined in ``__main__`` must be sent to workers by value.

    True when workers do not run the main module again (``python -c``, a REPL,
    IPython, Jupyter): a class of ``__main__`` pickled by reference would not be
    found there, and every worker given an instance of it would die at start-up.
    """
    main = sys.modules.get("__main__")
    return main is not None and _rerun_target(main) is None


def _rerun_target(main: types.ModuleType) -> str | None:
    """The file new workers would run again as ``__mp_main__``, or None; as
    ``multiprocessing.spawn.get_preparation_data`` decides it."""
    spec_name = getattr(getattr(main, "__spec__", None), "name", None)
    path = getattr(main, "__file__", None)
    if spec_name is not None:
        if spec_name == "__main__" or spec_name.endswith(".__main__"):
            return None
    elif path is not None and os.path.splitext(os.path.basename(path))[0] == "ipython":
        return None  # multiprocessing leaves IPython's launcher alone
    if not isinstance(path, str):
        return None
    original = getattr(multiprocessing.process, "ORIGINAL_DIR", None)
    if not os.path.isabs(path) and original is not None:
        path = os.path.join(original, path)
    return os.path.normpath(path)


def _parse(path: str) -> ast.Module | str | None:
    """The parsed main file, the message saying why workers cannot run it, or None
    for a compiled file (``python script.pyc``)."""
    shown = os.path.basename(path)
    if shown == "<stdin>":
        return (
            "the main program was read from standard input (`python - < file` or "
            "`python < file`); worker processes (start methods forkserver and spawn) run "
            "the main program again and cannot read it a second time; save the code in "
            f"a file and run `python file.py`, with the code that starts work under `{_GUARD}`"
        )
    how = (
        "run the code from a .py file, or move the functions that run in workers into a "
        "module; in a notebook, `del __file__` lets workers get the functions defined in "
        "cells by value"
    )
    if path.endswith(".ipynb"):
        return (
            f"__main__.__file__ names a notebook ({path}), which worker processes (start "
            f"methods forkserver and spawn) would try to run as a Python script; {how}"
        )
    try:
        stat = os.stat(path)
    except OSError:
        return (
            f"__main__.__file__ names {path}, which does not exist: worker processes "
            f"(start methods forkserver and spawn) run the main file again and would fail; "
            f"{how}"
        )
    if path.endswith((".pyc", ".pyo")):
        return None
    key = (path, stat.st_mtime_ns, stat.st_size)
    if key not in _parsed:
        try:
            with tokenize.open(path) as file:
                _parsed[key] = ast.parse(file.read(), path)
        except (OSError, SyntaxError, ValueError):
            _parsed[key] = None
    tree = _parsed[key]
    if tree is None:
        return (
            f"__main__.__file__ names {path}, which is not Python source that worker "
            f"processes (start methods forkserver and spawn) can run again; {how}"
        )
    return tree


def _top_level_frame(main: types.ModuleType, path: str) -> types.FrameType | None:
    """The main thread's frame running the top level of the main file, if any."""
    main_thread = threading.main_thread()
    frame: types.FrameType | None
    if threading.current_thread() is main_thread:
        frame = sys._getframe(1)
    else:
        frame = sys._current_frames().get(main_thread.ident or 0)
    real = os.path.realpath(path)
    while frame is not None:
        code = frame.f_code
        if (
            code.co_name == "<module>"
            and frame.f_globals is main.__dict__
            and os.path.realpath(code.co_filename) == real
        ):
            return frame
        frame = frame.f_back
    return None


def _guarded(body: list[ast.stmt], line: int) -> bool:
    """Whether the statement at ``line`` of ``body`` would not run with
    ``__name__ == "__mp_main__"`` (it sits in a branch that name does not take)."""
    while True:
        stmt = next((s for s in body if s.lineno <= line <= (s.end_lineno or s.lineno)), None)
        if stmt is None:
            return False
        if isinstance(stmt, ast.If):
            in_body = _within(stmt.body, line)
            if not in_body and not _within(stmt.orelse, line):
                return False  # the test itself is running
            if _mentions(stmt.test, _PROCESS_NAMES):
                value = _evaluate(stmt.test)
                if value is _UNKNOWN:
                    return True  # a test on the process we cannot read: trust it
                if bool(value) != in_body:
                    return True
            body = stmt.body if in_body else stmt.orelse
        elif isinstance(stmt, ast.Match):
            if _mentions(stmt.subject, _PROCESS_NAMES):
                return True
            case = next((c for c in stmt.cases if _within(c.body, line)), None)
            if case is None:
                return False
            body = case.body
        elif isinstance(stmt, ast.Try | ast.TryStar):
            blocks = [stmt.body, stmt.orelse, stmt.finalbody]
            blocks += [handler.body for handler in stmt.handlers]
            block = next((b for b in blocks if _within(b, line)), None)
            if block is None:
                return False
            body = block
        elif isinstance(stmt, ast.With | ast.AsyncWith | ast.For | ast.AsyncFor | ast.While):
            orelse = getattr(stmt, "orelse", [])
            block = next((b for b in (stmt.body, orelse) if _within(b, line)), None)
            if block is None:
                return False
            body = block
        else:  # a simple statement, or a def/class header that runs at import
            return False


def _within(body: list[ast.stmt], line: int) -> bool:
    return bool(body) and body[0].lineno <= line <= (body[-1].end_lineno or body[-1].lineno)


def _mentions(node: ast.AST, names: frozenset[str]) -> bool:
    return any(
        (isinstance(n, ast.Name) and n.id in names)
        or (isinstance(n, ast.Attribute) and n.attr in names)
        for n in ast.walk(node)
    )


_UNKNOWN: Any = object()


def _evaluate(node: ast.expr) -> Any:
    """The value of a test in a worker (``__name__ == "__mp_main__"``), or _UNKNOWN."""
    if isinstance(node, ast.Name):
        return "__mp_main__" if node.id == "__name__" else _UNKNOWN
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        values = [_evaluate(element) for element in node.elts]
        return _UNKNOWN if any(v is _UNKNOWN for v in values) else tuple(values)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        value = _evaluate(node.operand)
        return _UNKNOWN if value is _UNKNOWN else not value
    if isinstance(node, ast.BoolOp):
        values = [_evaluate(value) for value in node.values]
        decisive = isinstance(node.op, ast.Or)  # the value that decides an or / an and
        if any(v is not _UNKNOWN and bool(v) == decisive for v in values):
            return decisive
        return _UNKNOWN if any(v is _UNKNOWN for v in values) else not decisive
    if isinstance(node, ast.Compare):
        left = _evaluate(node.left)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            right = _evaluate(right_node)
            if left is _UNKNOWN or right is _UNKNOWN:
                return _UNKNOWN
            if isinstance(op, ast.Eq | ast.Is):
                result = left == right
            elif isinstance(op, ast.NotEq | ast.IsNot):
                result = left != right
            elif isinstance(op, ast.In | ast.NotIn) and isinstance(right, tuple | str):
                result = (left in right) == isinstance(op, ast.In)
            else:
                return _UNKNOWN
            if not result:
                return False
            left = right
        return True
    return _UNKNOWN
