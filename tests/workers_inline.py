"""Functions for the in-process mode's tests (tests/test_inline_mode.py): module-level,
so that worker processes started by forkserver or spawn can import them."""

from __future__ import annotations

import os
import sys
from typing import Any

import aiopar

#: The error kinds a property test may ask of :func:`compute` (one kind per example,
#: so that which failure comes first cannot change the type the caller sees).
ERRORS = ("value", "key", "exit", "unpicklable")


class Unpicklable(Exception):
    """An exception that cannot cross a pickle: it comes back as aiopar.RemoteError."""

    def __init__(self, code: int, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.lock = __import__("threading").Lock()


def compute(x: int, error: str | None = None) -> int:
    """``x*x - x``, or, when ``error`` names a kind, that failure for every x % 7 == 3."""
    if error is not None and x % 7 == 3:
        if error == "value":
            raise ValueError(f"bad item {x}")
        if error == "key":
            raise KeyError(x)
        if error == "exit":
            sys.exit(x)
        raise Unpicklable(x, "holds a lock")
    return x * x - x


def piece_sum(piece: list[int], error: str | None = None) -> int:
    """The sum of a piece, through :func:`compute` (so it fails as compute does)."""
    return sum(compute(x, error) for x in piece)


def concat_checked(a: str, b: str) -> str:
    """``a + b`` (associative), failing when either side holds a ``!``."""
    if "!" in a or "!" in b:
        raise ValueError(f"cannot join {a!r} and {b!r}")
    return a + b


def pid_and_state(_: Any = None) -> tuple[int, Any]:
    """This process's id and :func:`aiopar.worker_state`."""
    return os.getpid(), aiopar.worker_state()


def counting_initializer(prefix: str) -> str:
    """An initializer whose every run is visible: it counts its runs in this process."""
    global initializer_runs
    initializer_runs += 1
    return f"{prefix}-{os.getpid()}"


initializer_runs = 0


def breakpoint_here(x: int) -> int:
    """Calls ``breakpoint()``: in-process, the debugger (``sys.breakpointhook``) of the
    caller stops here."""
    breakpoint()
    return x + 1


def same_object(value: Any) -> Any:
    """Returns its argument: in-process without pickling, the very object given."""
    return value
