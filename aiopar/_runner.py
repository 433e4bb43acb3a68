"""``Runner``: the seam between a pool and the place its jobs run.

``_maps``, ``_tasks`` and ``_reduce`` make jobs (``_job.Job``) and await their futures;
a runner decides where a job runs and how a running one is cancelled. Three satisfy this
protocol: ``_dispatcher.Dispatcher`` (worker processes, fed from its own thread),
``_inline.InlineRunner`` (this process, on the event loop's thread) and
``_cluster.ClusterRunner`` (a Dask cluster). Its methods are called from the caller's
thread and never block, except ``close()``.

A runner may also pass results between its jobs itself (:class:`Linking`, the cluster's):
a job's arguments then hold :class:`~aiopar._job.Link` objects where the results of
other jobs go, and the runner puts each result in its place where the job runs; the
results of tasks stay there (their futures are ``_job.KeptFuture``) until wanted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, cast

from ._job import Job

__all__ = ["Linking", "Runner", "linking"]


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


class Linking(Runner, Protocol):
    """A runner that passes results between its jobs where they run (see the module
    docstring)."""

    links: bool  # True

    def store(self, job: Job, value: object) -> None:
        """Place ``value`` where the jobs run, as the (kept) result of ``job``."""

    def stop_jobs(self, jobs: Sequence[Job], *, kill: bool) -> list[Job]:
        """Stop ``jobs`` whose caller stopped waiting: none of them starts any more, and
        each running one is awaited (``kill=False``) or ended; return those whose futures
        are not settled yet (they will be, once none of them runs)."""
        ...


def linking(runner: Runner | None) -> Linking | None:
    """``runner`` if it passes results between its jobs itself, else None."""
    return cast(Linking, runner) if getattr(runner, "links", False) else None
