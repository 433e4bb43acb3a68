"""Functions the batching tests send to workers (module level, for forkserver/spawn)."""

from __future__ import annotations

import os
import time
from typing import Any


def node(index: int, seconds: float, fails: bool, *deps: Any) -> tuple[int, int]:
    """One node of a random task graph: waits ``seconds``, fails when told to, else
    returns its index and a digest of its dependencies' results."""
    if seconds:
        time.sleep(seconds)
    if fails:
        raise ValueError(f"node {index} fails")
    return index, sum(d[1] for d in deps) % 1_000_003 + index


def counted(directory: str, index: int, crash_at: int = -1, seconds: float = 0.0) -> int:
    """Record one run of task ``index`` (a file per run), then die if it is ``crash_at``."""
    with open(os.path.join(directory, f"{index}-{os.getpid()}-{time.monotonic_ns()}"), "w"):
        pass
    if seconds:
        time.sleep(seconds)
    if index == crash_at:
        os._exit(3)
    return index * 10


def started_then_sleep(path: str, seconds: float) -> str:
    """Record that we started, then sleep (so a test sees a batch under way)."""
    with open(path, "w") as f:
        f.write("started\n")
    time.sleep(seconds)
    return path


def wait_for(path: str, timeout: float = 30.0) -> str:
    """Hold a worker until ``path`` exists (or ``timeout`` seconds pass)."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.005)
    return path
