"""The exceptions aiopar raises.

One tree, rooted at :class:`AioparError`::

    Exception
    └── AioparError
        ├── WorkerCrashedError      (also a concurrent.futures.process.BrokenProcessPool)
        ├── RemoteError             a worker's exception that could not cross processes
        │   └── TaskExited          a task raised SystemExit, KeyboardInterrupt...
        └── ResultLoadError         a task's result cannot be rebuilt in the caller

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

__all__ = ["AioparError", "RemoteError", "ResultLoadError", "TaskExited", "WorkerCrashedError"]


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
    next call works. When every new worker dies before running anything (an initializer
    or an import that ends the process), the work fails with this error too, with
    ``at_start`` set and a message that says what to check.

    Attributes:
        task: what was running, for example ``"chunk 3 of amap(score)"``.
        pid: the dead worker's process id, if known.
        exitcode: its exit code (negative: the signal that killed it), if known.
        at_start: how many times in a row new workers died before running any task
            (0 when a worker died under this very task).
    """

    def __init__(
        self,
        task: str,
        pid: int | None = None,
        exitcode: int | None = None,
        *,
        at_start: int = 0,
    ) -> None:
        self.task = task
        self.pid = pid
        self.exitcode = exitcode
        self.at_start = at_start
        who = f"worker process {pid}" if pid else "a worker process"
        if at_start:
            message = (
                f"{task} could not run: every new worker process died before running any "
                f"task ({at_start} pools of workers in a row); check what runs when a worker "
                "starts: the pool's initializer, the module that defines the function (its "
                "import must not end the process), and the main script (code that starts "
                'work belongs under `if __name__ == "__main__":`). Later calls start new '
                "workers, which will die the same way until the cause is fixed"
            )
        else:
            message = (
                f"{who} {describe_exit(exitcode)} while running {task}; "
                "the pool has replaced it and later calls will run normally"
            )
        super().__init__(message)

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_crash, (type(self), self.task, self.pid, self.exitcode, self.at_start))


def _rebuild_crash(
    cls: type[WorkerCrashedError], task: str, pid: int | None, exitcode: int | None, at_start: int
) -> WorkerCrashedError:
    return cls(task, pid, exitcode, at_start=at_start)


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


class TaskExited(RemoteError):
    """A task raised ``SystemExit`` (``sys.exit()``), ``KeyboardInterrupt``,
    ``GeneratorExit`` or another ``BaseException`` that is not an ``Exception``.

    In the worker, such an exception is the end of that one task, not of your program:
    it comes back as this error, an ``Exception``, so that ``asyncio.gather``,
    ``asyncio.wait_for``, trio and your ``except Exception:`` treat it as the task's
    failure, and neither your program exits nor the other chunks of the call are
    killed. The worker keeps running.

    Attributes:
        type_name: the original exception type, for example ``"SystemExit"``.
        message: ``str()`` of the original exception.
        code: for ``SystemExit``, its exit code (``sys.exit(3)`` gives 3), else None.
        remote_traceback: the worker's formatted traceback.
    """

    def __init__(
        self,
        type_name: str,
        message: str,
        remote_traceback: str = "",
        code: int | str | None = None,
    ) -> None:
        self.code = code
        super().__init__(type_name, message, remote_traceback)

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.type_name, self.message, self.remote_traceback, self.code))

    def __str__(self) -> str:
        what = self.type_name if self.code is None else f"{self.type_name}({self.code!r})"
        if self.message and self.code is None:
            what += f": {self.message}"
        text = f"a task raised {what} in a worker; it ended that task only, not this program"
        if self.remote_traceback:
            text += f"\n\nWorker traceback:\n{self.remote_traceback}"
        return text


class ResultLoadError(AioparError):
    """A task finished in a worker, but its result cannot be rebuilt in the caller.

    Unpickling the result failed in this process, for example because its class is
    defined in a module only the workers can import, or because its ``__setstate__``
    or ``__reduce__`` reconstructor raises here. Only that call (or task) fails; the
    pool and other calls are not affected, and the task is not run again. The error
    from unpickling is the ``__cause__``.

    Attributes:
        task: what produced the result, for example ``"chunk 3 of amap(score)"``.
    """

    def __init__(self, task: str, reason: str = "") -> None:
        self.task = task
        self.reason = reason
        super().__init__(
            f"the result of {task} cannot be rebuilt in this process{reason}; return "
            "plain data (numbers, strings, lists, dicts, arrays, dataclasses of a module "
            "both sides can import) from functions that run in workers"
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.task, self.reason))
