"""The exceptions aiopar raises.

One tree, rooted at :class:`AioparError`::

    Exception
    └── AioparError
        ├── WorkerCrashedError      (also a concurrent.futures.process.BrokenProcessPool)
        └── RemoteError             a worker's exception that could not cross processes

Exceptions raised by *your* functions in a worker are re-raised in the caller with their
own type and message; the worker's traceback is attached as ``__cause__``, the way
:mod:`concurrent.futures` does it. Every exception here pickles, so it can itself cross
process boundaries.

Argument errors are plain :class:`TypeError` / :class:`ValueError`, raised before any
work starts, with a message that names the argument.
"""

from __future__ import annotations

import signal
from concurrent.futures.process import BrokenProcessPool

__all__ = ["AioparError", "RemoteError", "WorkerCrashedError"]


class AioparError(Exception):
    """Base class of the exceptions aiopar itself raises."""


def describe_exit(exitcode: int | None) -> str:
    """Say in words how a process ended, from its ``exitcode``."""
    if exitcode is None:
        return "ended for an unknown reason"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"was killed by {name}"
    return f"exited with code {exitcode}"


class WorkerCrashedError(AioparError, BrokenProcessPool):
    """A worker process died (killed, segfault, ``os._exit``) while running a task.

    Only the task or chunk that was running in the dead worker fails with this error;
    work that was merely queued is sent again, and the pool replaces the worker, so the
    next call works.

    Attributes:
        task: what was running, for example ``"chunk 3 of amap(score)"``.
        pid: the dead worker's process id, if known.
        exitcode: its exit code (negative: the signal that killed it), if known.
    """

    def __init__(self, task: str, pid: int | None = None, exitcode: int | None = None) -> None:
        self.task = task
        self.pid = pid
        self.exitcode = exitcode
        who = f"worker process {pid}" if pid else "a worker process"
        super().__init__(
            f"{who} {describe_exit(exitcode)} while running {task}; "
            "the pool has replaced it and later calls will run normally"
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.task, self.pid, self.exitcode))


class RemoteError(AioparError):
    """A worker's exception that could not be sent back as itself.

    This happens when an exception cannot be pickled, or cannot be rebuilt from its
    pickle (for example, its ``__init__`` needs arguments it does not pass to
    ``Exception.__init__``). The type name, message and traceback are kept as text.

    Attributes:
        type_name: qualified name of the original exception type.
        message: ``str()`` of the original exception.
        remote_traceback: the worker's formatted traceback.
    """

    def __init__(self, type_name: str, message: str, remote_traceback: str = "") -> None:
        self.type_name = type_name
        self.message = message
        self.remote_traceback = remote_traceback
        super().__init__(f"{type_name}: {message}")

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.type_name, self.message, self.remote_traceback))

    def __str__(self) -> str:
        text = f"{self.type_name}: {self.message}"
        if self.remote_traceback:
            text += f"\n\nWorker traceback:\n{self.remote_traceback}"
        return text
