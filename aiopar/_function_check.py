"""Refusing a function that cannot run in a worker, before any work starts.

An async generator function or a generator function (also behind a ``functools.partial``,
or as the ``__call__`` of an object) is refused: its result, a generator, cannot be sent
back from a worker. An ``async def`` function is accepted (:func:`is_coroutine_function`
tells the calls, which run it on the worker's event loop: see ``_worker_loop.py``). Used
by every call through ``pickle_function``, in the calling thread; re-exported by
``_checks.py``.
"""

from __future__ import annotations

import functools
import inspect

__all__ = ["check_function", "is_coroutine_function"]


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


def is_coroutine_function(func: object) -> bool:
    """Whether calling ``func`` makes a coroutine (``async def``, also behind a
    ``functools.partial`` or as an object's ``__call__``): it runs on a worker's loop."""
    return _function_kind(func) == "async"


def check_function(func: object, argument: str = "func", *, initializer: bool = False) -> None:
    """Raise TypeError, naming ``argument``, unless ``func`` can run in a worker.

    Refused: what is not callable; async generator functions and generator functions
    (a generator cannot be sent back). ``async def`` functions are accepted; with
    ``initializer=True`` async generator functions too (the worker's state is what
    they yield, see ``Pool(initializer=...)``).
    """
    if not callable(func):
        raise TypeError(f"{argument} must be callable, got {type(func).__name__}: {func!r}")
    kind = _function_kind(func)
    if kind is None or kind == "async" or (initializer and kind == "async generator"):
        return
    name = _name(func)
    if kind == "generator":
        raise TypeError(
            f"{argument}={name} is a generator function: its result, a generator, cannot "
            "be sent back from a worker process; make it return a list (return "
            "list(...)), or iterate in the parent"
        )
    raise TypeError(
        f"{argument}={name} is an async generator function (async def with yield): its "
        "result, an async generator, cannot be sent back from a worker process; make it "
        "an async def that returns a list (return [x async for x in ...]), or iterate "
        "in the parent"
    )
