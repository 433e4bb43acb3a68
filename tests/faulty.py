"""Functions that misbehave in worker processes, for tests/test_faults.py and tests/soak.py.

Module-level functions of an importable module, so they work under forkserver and spawn.
Each one dies, raises or blocks in a specific way; none of them imports aiopar, so they
can also be called in the parent to compute a sequential reference (see soak.py).
"""

from __future__ import annotations

import builtins
import ctypes
import os
import signal
import sys
import threading
import time
from typing import Any

# ── ways for a worker to die ─────────────────────────────────────────────────────────


def segfault(_: Any = None) -> None:
    """Read address 0: the worker dies of SIGSEGV."""
    ctypes.string_at(0)


def kill_self(_: Any = None) -> None:
    """SIGKILL this worker."""
    os.kill(os.getpid(), signal.SIGKILL)


def sleep_then_kill_self(seconds: float = 0.1) -> None:
    """Give the other jobs time to be queued or running, then SIGKILL this worker."""
    time.sleep(seconds)
    os.kill(os.getpid(), signal.SIGKILL)


def exit_on(x: int, bad: int = 5, code: int = 3) -> int:
    """``x``, except that item ``bad`` ends the worker with ``os._exit(code)``."""
    if x == bad:
        os._exit(code)
    return x


def kill_mid_chunk(piece: list[int], bad: int = 25) -> int:
    """Sum a piece of a list row by row; SIGKILL the worker halfway through the piece
    that holds ``bad``."""
    total = 0
    for index, value in enumerate(piece):
        if value == bad and index >= len(piece) // 2:
            os.kill(os.getpid(), signal.SIGKILL)
        total += value
    return total


def out_of_memory(megabytes: int = 64) -> None:
    """Behave like a process the kernel's OOM killer picks: allocate, then SIGKILL.

    The memory is touched page by page so it is really resident, as it would be for a
    process the OOM killer chooses; the kernel's OOM killer sends SIGKILL, so do we.
    """
    hog = bytearray(megabytes << 20)
    for offset in range(0, len(hog), 4096):
        hog[offset] = 1
    os.kill(os.getpid(), signal.SIGKILL)


def crash_first_time(marker: str, value: Any) -> Any:
    """Crash the worker (SIGKILL) the first time, return ``value`` on any later run.

    ``marker`` is a file path: a line is appended to it on every run, so a test can
    count the runs, and its existence tells a run that it is not the first one.
    """
    first = not os.path.exists(marker)
    with open(marker, "a") as f:
        f.write("run\n")
    if first:
        os.kill(os.getpid(), signal.SIGKILL)
    return value


def logged_value(log: str, value: Any, seconds: float = 0.05) -> Any:
    """Append ``value`` to ``log``, sleep, return ``value``: counts the runs of each task."""
    with open(log, "a") as f:
        f.write(f"{value}\n")
    time.sleep(seconds)
    return value


# ── blocking until a test says so ────────────────────────────────────────────────────


def start_then_wait(item: tuple[str, str, Any]) -> Any:
    """``item`` is ``(directory, release_path, value)``.

    Create ``directory/start-<value>``, wait until ``release_path`` exists (at most 30 s,
    so a broken test cannot hang), create ``directory/end-<value>``, return ``value``.
    """
    directory, release, value = item
    with open(os.path.join(directory, f"start-{value}"), "w"):
        pass
    deadline = time.monotonic() + 30.0
    while not os.path.exists(release):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{release} never appeared")
        time.sleep(0.005)
    with open(os.path.join(directory, f"end-{value}"), "w"):
        pass
    return value


def sleep_long(seconds: float = 60.0) -> float:
    """Sleep ``seconds`` (something for Ctrl-C or a parent's death to interrupt)."""
    time.sleep(seconds)
    return seconds


def write_pid_then_sleep(item: tuple[str, float]) -> int:
    """``item`` is ``(directory, seconds)``: create ``directory/pid-<pid>``, then sleep."""
    directory, seconds = item
    with open(os.path.join(directory, f"pid-{os.getpid()}"), "w"):
        pass
    time.sleep(seconds)
    return os.getpid()


# ── exceptions that are hard to send back ────────────────────────────────────────────


class TwoArgError(Exception):
    """Its ``__init__`` needs two arguments, but only the message reaches ``args``,
    so unpickling it (``TwoArgError(message)``) fails."""

    def __init__(self, code: int, detail: str) -> None:
        super().__init__(f"error {code}: {detail}")
        self.code = code
        self.detail = detail


class HoldsLockError(Exception):
    """Cannot be pickled at all: it holds a lock."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.lock = threading.Lock()


def raise_two_arg(piece: Any = None) -> None:
    raise TwoArgError(42, "checksum mismatch")


def raise_holds_lock(piece: Any = None) -> None:
    raise HoldsLockError("lock held while failing")


def add_or_raise_two_arg(a: int, b: int) -> int:
    """A reduction step that fails with an exception that cannot be rebuilt."""
    if a + b > 10:
        raise TwoArgError(a + b, "sum too large")
    return a + b


def return_lock(_: Any = None) -> Any:
    """Return a result that cannot be pickled."""
    return threading.Lock()


# ── the soak run's workload (tests/soak.py) ──────────────────────────────────────────


class SoakError(ValueError):
    """The error that soak tasks raise on purpose."""


def _spin(x: int) -> int:
    """A little deterministic CPU work."""
    acc = x
    for _ in range(50):
        acc = (acc * 1103515245 + 12345) % 2147483648
    return acc


def soak_leaf(i: int, fails: bool) -> int:
    if fails:
        raise SoakError(f"leaf {i} fails on purpose")
    return _spin(i) % 100_000


def soak_join(j: int, fails: bool, a: int, b: int) -> int:
    if fails:
        raise SoakError(f"join {j} fails on purpose")
    return (a + b + _spin(j)) % 1_000_003


def soak_item(item: tuple[int, bool]) -> int:
    """A map item: ``(value, fails)``."""
    value, fails = item
    if fails:
        raise SoakError(f"item {value} fails on purpose")
    return _spin(value) % 9973


def soak_chunk(piece: Any) -> Any:
    """An amap_chunks piece: a numpy array of ints; negative values fail the piece."""
    if (piece < 0).any():
        raise SoakError(f"the piece starting with {int(piece.flat[0])} is negative")
    return piece * 3 + 1


def soak_add(a: int, b: int) -> int:
    """A reduction step; a negative operand fails it."""
    if a < 0 or b < 0:
        raise SoakError(f"cannot add a negative value ({a}, {b})")
    return a + b


def deaf_to_sigterm_then_sleep(path: str, seconds: float = 30.0) -> float:
    """Ignore SIGTERM (as some libraries' handlers do), say so in ``path``, then sleep."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with open(path, "w") as file:
        file.write(str(os.getpid()))
    time.sleep(seconds)
    return seconds


# ── hostile tasks (tests/test_hostile.py) ────────────────────────────────────────────


def exit_with(code: Any = 3) -> None:
    """``sys.exit(code)`` inside a task."""
    sys.exit(code)


def raise_base(name: str = "KeyboardInterrupt") -> None:
    """Raise a BaseException that is not an Exception, by its builtin name."""
    raise getattr(builtins, name)("raised in a task")


def exit_on_item(x: int, bad: int = 5) -> int:
    """``x``, except that item ``bad`` calls ``sys.exit(7)``; the others sleep a little,
    so that chunks run beside the one that exits."""
    if x == bad:
        sys.exit(7)
    time.sleep(0.02)
    return x


class OnlyInItsProcess:
    """A result that pickles, but cannot be unpickled in any other process than the one
    that made it: its ``__setstate__`` raises there (as a class whose module only the
    workers can import would)."""

    def __init__(self, value: int) -> None:
        self.value = value
        self.pid = os.getpid()

    def __setstate__(self, state: dict[str, Any]) -> None:
        if state["pid"] != os.getpid():
            raise LookupError(f"OnlyInItsProcess({state['value']}) made in {state['pid']}")
        self.__dict__.update(state)


def only_in_its_process(value: int = 1, log: str | None = None) -> OnlyInItsProcess:
    """Return an :class:`OnlyInItsProcess`; append a line to ``log`` on every run."""
    if log is not None:
        with open(log, "a") as f:
            f.write("run\n")
    return OnlyInItsProcess(value)


def only_in_its_process_on(x: int, bad: int = 5) -> Any:
    """``x``, except item ``bad`` whose result cannot be rebuilt in the parent."""
    return OnlyInItsProcess(x) if x == bad else x


class RebuiltOnlyHereError(Exception):
    """An exception that pickles and unpickles in the worker, but not in the parent."""

    def __init__(self, pid: int) -> None:
        super().__init__(f"made in process {pid}")
        self.pid = pid

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_only_here, (self.pid,))


def _rebuild_only_here(pid: int) -> RebuiltOnlyHereError:
    if pid != os.getpid():
        raise LookupError(f"RebuiltOnlyHereError of process {pid} rebuilt elsewhere")
    return RebuiltOnlyHereError(pid)


def raise_rebuilt_only_here(_: Any = None) -> None:
    raise RebuiltOnlyHereError(os.getpid())


def leave_thread_running(x: Any = None) -> Any:
    """Start a non-daemon thread that never ends, and return ``x``."""
    threading.Thread(target=time.sleep, args=(3600,), daemon=False).start()
    return x


def fork_child_that_lives_on(directory: str) -> int:
    """Fork a child that returns from this task (and so would go back to the worker's
    loop, taking jobs) after writing ``directory/child-<pid>``; return our pid."""
    pid = os.fork()
    if pid == 0:
        with open(os.path.join(directory, f"child-{os.getpid()}"), "w"):
            pass
        return -os.getpid()
    return os.getpid()


def fork_sleeping_child(directory: str) -> int:
    """Fork a child that sleeps an hour (after writing ``directory/sleeper-<pid>``)."""
    pid = os.fork()
    if pid == 0:
        with open(os.path.join(directory, f"sleeper-{os.getpid()}"), "w"):
            pass
        time.sleep(3600)
        os._exit(0)
    return pid


def never_returns(*_: Any) -> None:
    """An initializer (or task) that never returns."""
    while True:
        time.sleep(3600)


def die_at_start(*_: Any) -> None:
    """An initializer that ends every new worker before it runs anything."""
    os._exit(3)


# ── arguments of a hostile shape (shared sub-structures, cycles) ─────────────────────


def doubling_nest(levels: int) -> list[Any]:
    """``a = [0]`` then ``a = [a, a]`` ``levels`` times: a few bytes pickled, but 2**levels
    paths to walk for a check without memory of what it has seen."""
    nest: list[Any] = [0]
    for _ in range(levels):
        nest = [nest, nest]
    return nest


def self_containing_list() -> list[Any]:
    """``l = []; l.append(l); l.append(l)``: a walk without memory never returns."""
    loop: list[Any] = []
    loop.append(loop)
    loop.append(loop)
    return loop


def nesting_depth(value: Any) -> int:
    """How many ``[0]`` steps lead from ``value`` to a non-list (a list that contains
    itself counts as -1)."""
    depth = 0
    seen: set[int] = set()
    while isinstance(value, list) and value:
        if id(value) in seen:
            return -1
        seen.add(id(value))
        value = value[0]
        depth += 1
    return depth
