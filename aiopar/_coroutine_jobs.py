"""Jobs of ``async def`` functions, on the caller's side: what is sent, how many at once.

A coroutine function is a property of the job, not a place to run it: any runner sends
the job; the worker that gets it runs it on its event loop (``_worker_loop.py``). What
changes on this side is the function's pickle (an :class:`~aiopar._worker_loop.OnLoop`
carrying the call's ``concurrency``), ``Job.concurrency`` (which the process runner
reads to batch tasks and to cancel a running job without killing its worker), and the
default chunk size of a map. :func:`task_function` gives ``submit`` the pickle of any
function, plain or async, remembering the last one for the runs of tasks of one function.
Runs in the caller's thread (any thread: the remembered function is one tuple, swapped
whole).
"""

from __future__ import annotations

import math
import pickle
import weakref
from collections.abc import Callable
from inspect import CO_COROUTINE
from types import BuiltinFunctionType, FunctionType
from typing import Any

from ._checks import is_coroutine_function
from ._chunks import check_positive
from ._codepickle import func_name, goes_by_name, pickle_function
from ._worker_loop import DEFAULT_CONCURRENCY, OnLoop

__all__ = [
    "DEFAULT_CONCURRENCY",
    "check_concurrency",
    "coroutine_chunksize",
    "job_function",
    "task_function",
]

#: A chunk of a coroutine map holds at most this many times ``concurrency`` items.
MOST_ROUNDS_PER_CHUNK = 4
#: Chunks per worker a coroutine map of known length is cut into (for balance), as
#: long as each still feeds ``concurrency`` coroutines.
CHUNKS_PER_WORKER = 4


def check_concurrency(concurrency: object) -> int | None:
    """``concurrency`` as an int >= 1, or None; TypeError/ValueError naming it."""
    return check_positive("concurrency", concurrency)


def job_function(
    func: Callable[..., Any], concurrency: int | None, default: int | None
) -> tuple[bytes, int]:
    """The pickle to send for ``func`` and the job's concurrency (0: not a coroutine
    function).

    ``concurrency`` is the call's own, ``default`` the pool's (None: 100).

    Raises:
        TypeError: ``func`` cannot run in a worker, or ``concurrency`` was given for a
            plain function.
    """
    blob = pickle_function(func)
    if not _is_async(func):
        if concurrency is not None:
            raise TypeError(
                f"concurrency={concurrency} bounds the coroutines of an async def function "
                f"that one worker runs at once, and func={func_name(func)} is a plain "
                "function (each worker runs it one item at a time); drop concurrency=, or "
                "make func an async def"
            )
        return blob, 0
    if concurrency is None:
        concurrency = default or DEFAULT_CONCURRENCY
    return pickle.dumps(OnLoop(blob, concurrency, func_name(func))), concurrency


# The last function submitted whose pickle is the same at every call (one that goes by
# name), with the pool's concurrency it was made for: (weak reference to it, that
# concurrency, its pickle, the job's concurrency, its name). Tasks come in runs of one
# function; each of them then skips the pickle cache's lookup and the function checks.
_last_function: tuple[weakref.ref[Any], int | None, bytes, int, str] | None = None


def task_function(func: Callable[..., Any], pool_concurrency: int | None) -> tuple[bytes, int, str]:
    """``func``'s pickle, the job's concurrency (see :func:`job_function`) and its name,
    for ``submit``."""
    global _last_function
    last = _last_function
    if last is not None and last[0]() is func and last[1] == pool_concurrency:
        return last[2], last[3], last[4]
    blob, concurrency = job_function(func, None, pool_concurrency)
    name = func_name(func)
    if goes_by_name(func):
        _last_function = (weakref.ref(func), pool_concurrency, blob, concurrency, name)
    return blob, concurrency, name


def _is_async(func: object) -> bool:
    """:func:`is_coroutine_function`, with a fast answer for plain functions (the path
    of every small task)."""
    kind = type(func)
    if kind is FunctionType:
        return bool(func.__code__.co_flags & CO_COROUTINE)  # type: ignore[attr-defined]
    if kind is BuiltinFunctionType:
        return False
    return is_coroutine_function(func)


def coroutine_chunksize(concurrency: int, workers: int, length: int | None) -> int:
    """Items per chunk of a map of an async def function, when the caller gave none.

    A worker runs one chunk at a time, up to ``concurrency`` of its items at once, so a
    chunk should hold at least ``concurrency`` items; bigger chunks (up to
    :data:`MOST_ROUNDS_PER_CHUNK` rounds) spare the wait for the slowest item of each
    chunk, smaller ones balance the workers. With a known length: about
    :data:`CHUNKS_PER_WORKER` chunks per worker, or one per worker for few items.
    """
    most = MOST_ROUNDS_PER_CHUNK * concurrency
    if length is None:
        return most
    size = math.ceil(length / (CHUNKS_PER_WORKER * workers))
    if size < concurrency:
        size = min(concurrency, math.ceil(length / workers))
    return max(1, min(size, most))
