"""``Runner``: the seam between a pool and the place its jobs run.

``_maps``, ``_tasks`` and ``_reduce`` make jobs (``_job.Job``) and await their futures;
a runner decides where a job runs and how a running one is cancelled. Two satisfy this
protocol: ``_dispatcher.Dispatcher`` (worker processes, fed from its own thread) and
``_inline.InlineRunner`` (this process, on the event loop's thread). Its methods are
called from the caller's thread and never block, except ``close()``.
"""

from __future__ import annotations

from typing import Any, Protocol

from ._job import Job

__all__ = ["Runner"]


class Runner(Protocol):
    """What a pool needs of whatever runs its jobs: the ``Dispatcher`` (worker
    processes, ``_dispatcher.py``) or an :class:`InlineRunner` (this process)."""

    @property
    def arena(self) -> Any: ...

    @property
    def workers(self) -> int: ...

    def submit(self, job: Job) -> None: ...

    def try_cancel(self, job: Job) -> bool: ...

    def cancel(self, job: Job, *, kill: bool) -> None: ...

    def close(self) -> None: ...

    def arena_segments(self) -> list[str]: ...

    def worker_pids(self) -> list[int]: ...
