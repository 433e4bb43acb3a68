"""More functions that tests send to worker processes (see tests/workers.py).

Module-level functions of an importable module, so they work under forkserver and spawn.
"""

from __future__ import annotations

import os
import time
from typing import Any

from tests.workers import total


def negate_each(chunk: Any) -> list[Any]:
    """Elementwise negation of a sequence piece, as a list (``-list`` is not defined)."""
    return [-x for x in chunk]


def total_unless(node: int, failing: bool, *args: Any, **kwargs: Any) -> Any:
    """``workers.total(*args, **kwargs)``, or ValueError naming ``node`` when ``failing``."""
    if failing:
        raise ValueError(f"node {node} failed")
    return total(*args, **kwargs)


def log_then_sleep(path: str, seconds: float = 0.4) -> str:
    """Append "start" to ``path``, sleep, append "end": shows which items began and ended."""
    with open(path, "a") as f:
        f.write("start\n")
    time.sleep(seconds)
    with open(path, "a") as f:
        f.write("end\n")
    return path


def wait_for_file(item: tuple[str | None, Any]) -> Any:
    """``item`` is ``(path, value)``: wait until ``path`` exists (if given), return value.

    Lets a test decide when a task finishes, by creating the file, instead of guessing
    how long a sleep must be. Gives up after 30 s so that a broken test cannot hang.
    """
    path, value = item
    deadline = time.monotonic() + 30.0
    while path is not None and not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.005)
    return value
