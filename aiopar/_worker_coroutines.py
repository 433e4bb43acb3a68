"""What a job of an ``async def`` function does on a worker's event loop.

The coroutines built here run on the loop of ``_worker_loop.LoopThread``, in its
thread; :func:`coroutine` and :func:`is_async` are called in the worker's main thread.
Imported by every worker at start-up (through ``_worker.py``): asyncio is imported only
when a job runs.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from ._envelopes import CALL, MAP, REDUCE

__all__ = ["awaited", "call", "coroutine", "is_async", "map_items", "reduce_items"]

# co_flags of the code of an async def (CO_COROUTINE) or async generator function
# (CO_ASYNC_GENERATOR); read without importing inspect.
_ASYNC_CODE = 0x0080 | 0x0200


def is_async(func: object) -> bool:
    """Whether ``func`` is an ``async def`` or async generator function (also behind a
    ``functools.partial``): an initializer to run on the worker's loop."""
    while isinstance(func, functools.partial):
        func = func.func
    flags = getattr(getattr(func, "__code__", None), "co_flags", 0)
    return isinstance(flags, int) and bool(flags & _ASYNC_CODE)


def coroutine(
    func: Callable[..., Any], concurrency: int, kind: str, data: Any
) -> Coroutine[Any, Any, Any]:
    """The coroutine of a job of the ``async def`` function ``func``, of ``kind``
    (``CALL``, ``MAP``, ``REDUCE``) over ``data``, its loaded payload."""
    if kind == CALL:
        args, kwargs = data
        return call(func, args, kwargs)
    if kind == MAP:
        return map_items(func, data, concurrency)
    if kind == REDUCE:
        return reduce_items(func, data)
    raise ValueError(f"unknown job kind {kind!r}")


async def awaited(result: Any) -> Any:
    """``result`` itself, or what it gives when awaited (a coroutine, a future)."""
    if hasattr(result, "__await__"):
        return await result
    return result


async def call(func: Callable[..., Any], args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
    """``await func(*args, **kwargs)``."""
    return await awaited(func(*args, **kwargs))


async def map_items(
    func: Callable[[Any], Any], items: Sequence[Any], concurrency: int
) -> list[Any]:
    """``[await func(x) for x in items]``, with up to ``concurrency`` of them at once.

    On the first failure the others are cancelled (and awaited), then it is raised.
    """
    import asyncio

    results: list[Any] = [None] * len(items)
    todo = iter(enumerate(items))

    async def runner() -> None:
        for index, item in todo:
            results[index] = await awaited(func(item))

    loop = asyncio.get_running_loop()
    name = f"{_name(func)} (aiopar chunk)"  # what PYTHONASYNCIODEBUG=1 reports
    count = min(concurrency, len(items))
    tasks = [loop.create_task(runner(), name=name) for _ in range(count)]
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    except BaseException:  # this job was cancelled: so are its coroutines
        await _cancel_all(tasks)
        raise
    failed = [task for task in tasks if task in done and task.exception() is not None]
    if failed:
        await _cancel_all(pending)
        raise failed[0].exception()  # type: ignore[misc]
    return results


async def _cancel_all(tasks: Any) -> None:
    import asyncio

    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks)


async def reduce_items(func: Callable[[Any, Any], Any], items: Sequence[Any]) -> Any:
    """``functools.reduce`` with an async ``func``: one step after the other."""
    value = items[0]
    for item in items[1:]:
        value = await awaited(func(value, item))
    return value


def _name(func: object) -> str:
    name = getattr(func, "__qualname__", None) or getattr(func, "__name__", None)
    return name if isinstance(name, str) else type(func).__name__
