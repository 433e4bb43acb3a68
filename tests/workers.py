"""Functions that tests send to worker processes.

They live at module level of an importable module, so they work with the forkserver
and spawn start methods.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import aiopar


def square(x: int) -> int:
    return x * x


def double(x: Any) -> Any:
    return x * 2


def add(a: Any, b: Any) -> Any:
    return a + b


def concat(a: str, b: str) -> str:
    return a + b


def identity(x: Any) -> Any:
    return x


def total(*args: Any, **kwargs: Any) -> Any:
    """Sum positional and keyword values, flattening lists, tuples, sets and dict values."""

    def flat(value: Any) -> Any:
        if isinstance(value, dict):
            return sum(flat(v) for v in value.values())
        if isinstance(value, list | tuple | set | frozenset):
            return sum(flat(v) for v in value)
        return value

    return flat(args) + flat(kwargs)


def sleep_then(x: Any, seconds: float = 0.2) -> Any:
    time.sleep(seconds)
    return x


def pid(_: Any = None) -> int:
    return os.getpid()


def slow_pid(_: Any = None) -> int:
    time.sleep(0.3)
    return os.getpid()


def fail(x: Any) -> Any:
    raise ValueError(f"bad item {x!r}")


def fail_on(x: int, bad: int = 3) -> int:
    if x == bad:
        raise ValueError(f"bad item {x!r}")
    return x


def die(x: Any = None) -> Any:
    os._exit(13)


def die_on(x: int, bad: int = 3) -> int:
    if x == bad:
        os.kill(os.getpid(), signal.SIGKILL)
    return x


def get_state(_: Any = None) -> Any:
    return aiopar.worker_state()


def make_state(prefix: str) -> str:
    return f"{prefix}-{os.getpid()}"


def failing_initializer() -> None:
    raise OSError("model file missing")


class NeedsTwoArgs(Exception):
    """An exception whose __init__ cannot be rebuilt from its pickle."""

    def __init__(self, code: int, detail: str) -> None:
        super().__init__(f"code {code}: {detail}")
        self.code = code


def raise_needs_two(_: Any = None) -> None:
    raise NeedsTwoArgs(7, "disk on fire")


class Unpicklable(Exception):
    def __reduce__(self) -> Any:
        raise TypeError("this exception refuses to be pickled")


def raise_unpicklable(_: Any = None) -> None:
    raise Unpicklable("cannot travel")


def return_lambda(_: Any = None) -> Any:
    return lambda y: y + 1


def sum_chunk(chunk: Any) -> Any:
    return sum(chunk)


def rows(frame: Any) -> int:
    return len(frame)


def negate(chunk: Any) -> Any:
    return -chunk


def mark_sleep(path: str, seconds: float = 0.5) -> str:
    """Sleep, then record that we finished (to see whether a cancelled task ran on)."""
    time.sleep(seconds)
    with open(path, "a") as f:
        f.write("finished\n")
    return path


def append_line(path: str) -> str:
    with open(path, "a") as f:
        f.write("ran\n")
    return path


def scribble(chunk: Any) -> Any:
    """Try to write into the input a worker received."""
    chunk[...] = 0
    return chunk


def make_matrix(n: int) -> Any:
    import numpy as np

    return np.random.default_rng(n).normal(size=(n, n))


def matmul(a: Any, b: Any) -> Any:
    return a @ b


def die_on_big(chunk: Any) -> Any:
    if chunk[0] > 1_000:
        os.kill(os.getpid(), signal.SIGKILL)
    return -chunk


def pid_and_state(_: Any = None) -> tuple[int, Any]:
    """This worker's pid with its state, from the same task."""
    time.sleep(0.05)
    return os.getpid(), aiopar.worker_state()


def rss_kept_after_free(nbytes: int) -> int:
    """Bytes of resident memory still held after allocating, touching and freeing
    ``nbytes`` (Linux)."""
    import numpy as np

    def rss() -> int:
        with open("/proc/self/statm") as file:
            return int(file.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    before = rss()
    block = np.ones(nbytes // 8)
    del block
    return rss() - before


def lengths(a: Any, b: Any) -> Any:
    """Add two values, counting a list as its length (tree_reduce over lists)."""
    return (len(a) if isinstance(a, list) else a) + (len(b) if isinstance(b, list) else b)


def first_two_are_one(x: Any) -> bool:
    """Whether ``x[0]`` and ``x[1]`` arrived as the same object."""
    return x[0] is x[1]


def pid_and_value(x: Any) -> tuple[int, Any]:
    """This worker's pid with ``x``: which process ran which item."""
    return os.getpid(), x


def append_pid(path: str) -> int:
    """Record one run of this task, by the pid that ran it."""
    with open(path, "a") as f:
        f.write(f"{os.getpid()}\n")
    return os.getpid()


def _children() -> int:
    """How many live child processes this process has."""
    import psutil

    return sum(
        1
        for child in psutil.Process().children(recursive=True)
        if child.status() != psutil.STATUS_ZOMBIE
    )


def nested_sync(x: int) -> tuple[int, int]:
    """From plain code in a worker: a small task graph on the default pool."""
    first = aiopar.submit(square, x)
    second = aiopar.submit(add, first, 1)
    return second.future.result(), _children()


async def _nested_calls(n: int) -> tuple[list[int], int, int, str]:
    squares = await aiopar.amap(square, range(n))
    chain = aiopar.submit(add, aiopar.submit(square, n), aiopar.submit(double, n))
    streamed = [value async for value in aiopar.imap(double, range(n))]
    try:
        await aiopar.submit(fail, n)
    except ValueError as exc:
        error = type(exc).__name__
    else:
        error = "nothing raised"
    return squares, await chain, sum(streamed), error


def nested_asyncio(n: int) -> tuple[tuple[list[int], int, int, str], int]:
    """``asyncio.run`` of aiopar calls inside a worker."""
    import asyncio

    return asyncio.run(_nested_calls(n)), _children()


def nested_trio(n: int) -> tuple[tuple[list[int], int, int, str], int]:
    """``trio.run`` of aiopar calls inside a worker."""
    import trio

    return trio.run(_nested_calls, n), _children()


def nested_remote(x: int) -> int:
    """A ``@remote`` function called with ``.remote()`` inside a worker."""
    return aiopar.remote(square).remote(x).future.result()


def append_item(path: str, item: Any) -> Any:
    """Record ``item`` in the file at ``path`` (to see which calls ran, in which order)."""
    with open(path, "a") as f:
        f.write(f"{item}\n")
    return item


def mutate(items: list[Any]) -> list[Any]:
    items.append("changed in the task")
    return items


def return_lock(_: Any = None) -> Any:
    """A result that cannot be pickled."""
    import threading

    return threading.Lock()


def wait_for_file(path: str, value: Any = None, seconds: float = 30.0) -> Any:
    """Return ``value`` once the file at ``path`` exists (the test says when to finish)."""
    deadline = time.monotonic() + seconds
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.01)
    return value


def start_then_finish(folder: str, seconds: float = 3.0) -> str:
    """Write ``started`` (with our pid) in ``folder``, sleep, then write ``finished``:
    a task cancelled with cancel="kill" never writes the second file."""
    with open(os.path.join(folder, "started"), "w") as f:
        f.write(str(os.getpid()))
    time.sleep(seconds)
    with open(os.path.join(folder, "finished"), "w") as f:
        f.write(str(os.getpid()))
    return folder


def start_then_finish_pair(left: str, right: str) -> str:
    """:func:`start_then_finish` for tree_reduce (``left`` is the folder)."""
    return start_then_finish(left)


def start_then_finish_piece(piece: list[str]) -> str:
    """:func:`start_then_finish` for amap_chunks (a piece of a list of folders)."""
    return start_then_finish(piece[0])


def segment_of(array: Any) -> tuple[str | None, float]:
    """The name of the shared-memory segment ``array`` lies in (None: a private copy),
    with the array's sum."""
    from aiopar import _segments, _shm

    root = _shm._root_buffer(array)
    names = [name for name, mapping in _segments._worker_maps._maps.items() if mapping is root]
    return (names[0] if names else None), float(array.sum())
