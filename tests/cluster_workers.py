"""Functions that the cluster tests (tests/test_cluster*.py) send to workers: importable
by Dask's worker processes and by local ones alike, and light to import."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any


def chained(x: int) -> int:
    """Raise a ValueError whose __cause__ is a KeyError."""
    try:
        raise KeyError(f"inner {x}")
    except KeyError as error:
        raise ValueError(f"outer {x}") from error


class Unpicklable:
    """A value that crosses processes between workers, but never through the caller."""

    def __init__(self, value: int) -> None:
        self.value = value
        self.made_in = os.getpid()

    def __reduce__(self) -> Any:
        if os.environ.get("AIOPAR_TEST_CALLER") == str(os.getpid()):
            raise TypeError("this value must not be pickled in the test's own process")
        return (_rebuild, (self.value, self.made_in))


def _rebuild(value: int, made_in: int) -> Unpicklable:
    global rebuilt_in_caller
    if os.environ.get("AIOPAR_TEST_CALLER") == str(os.getpid()):
        rebuilt_in_caller += 1
    made = Unpicklable(value)
    made.made_in = made_in
    return made


def make_unpicklable(value: int) -> Unpicklable:
    return Unpicklable(value)


def value_of(item: Unpicklable, extra: int = 0) -> int:
    return item.value + extra


def combine_unpicklable(a: Unpicklable, b: Unpicklable) -> Unpicklable:
    return Unpicklable(a.value + b.value)


def touch_then_sleep(path: str, seconds: float = 0.3) -> str:
    """Leave a file named after the task, then sleep: to see which tasks started."""
    Path(path).touch()
    time.sleep(seconds)
    return path


def sleep_and_record(item: tuple[str, float]) -> str:
    folder, seconds = item
    Path(folder, f"start-{time.monotonic_ns()}").touch()
    time.sleep(seconds)
    return folder


rebuilt_in_caller = 0


def busy_keys(dask_worker: Any = None) -> list[str]:
    """On a Dask worker (Client.run): the keys of the aiopar tasks that run or may still
    run there."""
    states = {"executing", "long-running", "cancelled", "resumed", "ready", "constrained"}
    return [
        str(key)
        for key, task in dask_worker.state.tasks.items()
        if "-aiopar-" in str(key) and task.state in states
    ]
