"""Coroutine functions (``async def``) that tests send to workers (tests/test_coroutines.py).

Module level, so that forkserver and spawn workers import them by name. What they
observe travels back in their results or through files (appended one line at a time).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator
from typing import Any

import aiopar

# Per worker process: the barriers of barrier_item, by key.
_arrived: dict[str, int] = {}
_all_in: dict[str, asyncio.Event] = {}


def _append(path: str, line: str) -> None:
    with open(path, "a") as file:
        file.write(line + "\n")
        file.flush()


async def double(x: int) -> int:
    await asyncio.sleep(0)
    return 2 * x


async def add(a: int, b: int) -> int:
    await asyncio.sleep(0)
    return a + b


async def piece_sum(piece: list[int]) -> list[int]:
    await asyncio.sleep(0)
    return [sum(piece)]


async def barrier_item(item: tuple[str, int, float]) -> int:
    """Wait until ``n`` coroutines of this worker reached the barrier ``key``; return
    the pid. With fewer running at once than ``n`` this times out: TimeoutError."""
    key, n, timeout = item
    _arrived[key] = _arrived.get(key, 0) + 1
    event = _all_in.setdefault(key, asyncio.Event())
    if _arrived[key] >= n:
        event.set()
    async with asyncio.timeout(timeout):
        await event.wait()
    return os.getpid()


async def fail_on(x: int, bad: int = 3) -> int:
    await asyncio.sleep(0)
    if x == bad:
        raise ValueError(f"async item {x} is bad")
    return x


async def wait_forever(path: str) -> None:
    """Log start; sleep a minute; log how it ended (cancelled, then finally)."""
    _append(path, f"start {os.getpid()}")
    try:
        await asyncio.sleep(60)
    except asyncio.CancelledError:
        _append(path, "cancelled")
        raise
    finally:
        _append(path, "finally")


async def state_info(_: Any = None) -> tuple[int, str, int, bool]:
    """(pid, the state's token, the pid the state was made in, same loop as the state)."""
    state = aiopar.worker_state()
    await asyncio.sleep(0.01)  # several tasks of a batch at once
    same_loop = state["loop"] == id(asyncio.get_running_loop())
    return os.getpid(), state["token"], state["pid"], same_loop


async def session(log: str) -> AsyncIterator[dict[str, Any]]:
    """An async generator initializer: opens a "session", closes it when the worker ends."""
    await asyncio.sleep(0)
    token = os.urandom(4).hex()
    _append(log, f"open {os.getpid()} {token}")
    try:
        yield {"token": token, "pid": os.getpid(), "loop": id(asyncio.get_running_loop())}
    finally:
        await asyncio.sleep(0)  # the loop still runs at the end
        _append(log, f"close {os.getpid()} {token}")


async def plain_async_state(value: str) -> dict[str, Any]:
    await asyncio.sleep(0)
    return {"token": value, "pid": os.getpid(), "loop": id(asyncio.get_running_loop())}


async def quick_logged(path: str, x: int) -> int:
    await asyncio.sleep(0)
    _append(path, f"done {x}")
    return x


async def sleep_long(x: int) -> int:
    await asyncio.sleep(30)
    return x


async def crash_after(path: str, lines: int) -> None:
    """Exit the worker at once (a crash) once ``path`` holds ``lines`` lines."""
    while True:
        try:
            with open(path) as file:
                if len(file.readlines()) >= lines:
                    break
        except FileNotFoundError:
            pass
        await asyncio.sleep(0.01)
    os._exit(7)


def loop_threads(_: Any = None) -> list[str]:
    """The names of this worker's event-loop threads (a plain function)."""
    return [t.name for t in threading.enumerate() if t.name == "aiopar-worker-loop"]


async def async_gen_func(x: int) -> AsyncIterator[int]:
    yield x


def returns_a_coroutine(x: int) -> Any:
    """A plain def that returns a coroutine: refused with advice."""
    return double(x)


async def wait_for_file(log: str, flag: str) -> str:
    """Log start; return "done" once the file ``flag`` exists; log a cancellation."""
    _append(log, f"start {os.getpid()}")
    try:
        while not os.path.exists(flag):
            await asyncio.sleep(0.01)
    except asyncio.CancelledError:
        _append(log, "cancelled")
        raise
    return "done"


async def failing_initializer() -> None:
    await asyncio.sleep(0)
    raise OSError("no network in this worker")
