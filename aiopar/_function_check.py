"""Refusing a function that cannot run in a worker, before any work starts.

An ``async def`` function, an async generator function or a generator function (also
behind a ``functools.partial``, or as the ``__call__`` of an object) is refused: its
result, a coroutine or a generator, cannot be sent back from a worker. Used by every
call through ``pickle_function``, in the calling thread; re-exported by ``_checks.py``.
"""

from __future__ import annotations

import functools
import inspect

__all__ = ["check_function"]


def _name(func: object) -> str:
    name = getattr(func, "__qualname__", None) or getattr(func, "__name__", None)
    return name if isinstance(name, str) else type(func).__name__


def _function_kind(func: object) -> str | None:
    """``"async"``, ``"async generator"``, ``"generator"`` or None (a plain callable)."""
    # A RemoteFunction needs no unwrapping: making one checks its function, so it
    # never holds one of the kinds refused here.
    target = func
    for _ in range(100):  # partials of partials
        if isinstance(target, functools.partial):
            target = target.func
        else:
            break
    candidates = [target]
    if not (inspect.isfunction(target) or inspect.ismethod(target) or inspect.isclass(target)):
        call = getattr(type(target), "__call__", None)  # noqa: B004
        if call is not None:
            candidates.append(call)
    for candidate in candidates:
        if inspect.iscoroutinefunction(candidate):
            return "async"
        if inspect.isasyncgenfunction(candidate):
            return "async generator"
        if inspect.isgeneratorfunction(candidate):
            return "generator"
    return None


def check_function(func: object, argument: str = "func") -> None:
    """Raise TypeError, naming ``argument``, unless ``func`` can run in a worker.

    Refused: what is not callable; async functions and async generator functions
    (not supported yet); generator functions (a generator cannot be sent back).
    """
    if not callable(func):
        raise TypeError(f"{argument} must be callable, got {type(func).__name__}: {func!r}")
    kind = _function_kind(func)
    if kind is None:
        return
    name = _name(func)
    if kind == "generator":
        raise TypeError(
            f"{argument}={name} is a generator function: its result, a generator, cannot "
            "be sent back from a worker process; make it return a list (return "
            "list(...)), or iterate in the parent"
        )
    raise TypeError(
        f"{argument}={name} is an {kind} function (async def): coroutine functions are "
        "not supported yet; make it a plain def, or run the async part in the parent "
        "and pass its result"
    )
