"""``ClusterRunner``: a pool's jobs as tasks of a Dask cluster (``Pool(cluster=...)``).

The path of one job::

    caller's thread                       the client's event loop           Dask workers
    ───────────────                       ───────────────────────           ────────────
    ClusterRunner.submit(job) ──► Client.submit(_cluster_worker.run, ...,
      (non-blocking; Dask            *the Dask futures of the tasks it     run_job(...) in a
       pickles the arguments)        depends on*, pure=False) ───────────► task thread; the
                                  ──► _follow(job): waits for the task ◄── result stays in
    job.future ◄── set_result ◄──     finished: fetches the result of a    the worker's memory
      (FutureWatcher wakes the        map chunk now, a task's only when
       caller's loop, see             someone waits for it (_job.KeptFuture)
       _waiting.py)

The client runs its own event loop in a thread of its own (``distributed.Client``
without ``asynchronous=True``): a pool is not tied to one event loop, so one client
serves asyncio, uvloop and trio callers and sync code alike; each Dask future is
awaited by a coroutine on the client's loop (no thread, no polling per future), which
wakes the caller's loop through the job's ``concurrent.futures.Future``.

Results pass between tasks inside the cluster: a job's arguments hold
``_job.Link`` objects where other jobs' results go; they are pickled here with their
places marked, and the Dask futures of those jobs become arguments of the Dask task, so
Dask moves the data from worker to worker (``_cluster_worker.Linked``).

Cancelling: ``try_cancel`` (``TaskRef.cancel()``) cancels the Dask task unless it has
finished (a task already executing runs to its end in its worker, its result
dropped); ``stop_jobs`` (a caller that stopped waiting) also makes sure none of them
runs any more before their futures settle: each worker is told not to start them
(``_cluster_worker.stop``) and waits for those running (``cancel="wait"``), or, with
``cancel="kill"``, a worker that runs one ends its own process at once (SIGKILL: its
nanny starts a new one, and Dask treats the other tasks it held as those of a dead
worker: run again elsewhere, up to the scheduler's ``allowed-failures``).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import functools
import logging
import secrets
import threading
from collections.abc import Coroutine, Sequence
from concurrent.futures.process import _RemoteTraceback
from typing import Any

from . import _cluster_worker
from ._carried import Carried
from ._cluster_options import import_distributed
from ._job import Job, KeptFuture, _cancel_error, _set_exception
from ._linking import linked, task_key
from .errors import WorkerCrashedError

__all__ = ["ClusterRunner"]

logger = logging.getLogger("aiopar")


class ClusterRunner:
    """Runs a pool's jobs as Dask tasks; see the module docstring.

    Args:
        cluster: a scheduler address (the runner makes a client, and closes it) or a
            ``distributed.Client`` (used, never closed).
        initializer_blob, initargs_blob: the pool's pickled initializer and its
            arguments, run once in each Dask worker (a worker plugin).
        retries: how many times a task is submitted again after Dask gave it up for
            the deaths of its workers (``KilledWorker``).
    """

    links = True

    def __init__(
        self,
        cluster: Any,
        *,
        initializer_blob: bytes | None = None,
        initargs_blob: bytes | None = None,
        retries: int = 0,
    ) -> None:
        distributed = import_distributed()
        self._killed_worker: type[BaseException] = distributed.scheduler.KilledWorker
        self._owned = isinstance(cluster, str)
        self._client: Any = (
            distributed.Client(cluster, set_as_default=False) if self._owned else cluster
        )
        self._token = secrets.token_hex(8)
        self._retries = retries
        self._lock = threading.Lock()
        self._closed = False
        self._live: dict[Job, tuple[Any, ...]] = {}  # job -> its arguments of Client.submit
        self._labels: dict[str, str] = {}  # Dask key -> label of the job, for crash messages
        self._plugin: str | None = None
        try:
            self._workers = sum(self._client.nthreads().values()) or 1
            if initializer_blob is not None:
                self._plugin = f"aiopar-initializer-{self._token}"
                from ._cluster_plugin import Initializer

                plugin = Initializer(self._token, initializer_blob, initargs_blob)
                self._client.register_plugin(plugin, name=self._plugin)
        except BaseException:
            if self._owned:
                self._client.close()
            raise

    @property
    def client(self) -> Any:
        """The ``distributed.Client`` the jobs go through."""
        return self._client

    @property
    def arena(self) -> None:
        """No shared memory: the workers may be on other machines."""
        return None

    @property
    def workers(self) -> int:
        """Threads of the cluster's workers, when the runner started."""
        return self._workers

    # ── submitting ─────────────────────────────────────────────────────────────────

    def submit(self, job: Job) -> None:
        """Submit ``job`` as a Dask task, with the Dask futures of the jobs it links to."""
        with self._lock:
            closed = self._closed
        if closed:
            _set_exception(job.future, RuntimeError("the pool is closed"))
            return
        try:
            payload: Any = _cluster_worker.Payload(job.payload)
            depends: list[Job] = []
            if job.linked:
                payload, depends = linked(job.payload)
            for dependency in depends:
                if self._failed_dependency(job, dependency):
                    return
            timed = not isinstance(job.future, KeptFuture)
            arguments = (
                _cluster_worker.run,
                self._token,
                job.func_blob,
                job.kind,
                payload,
                timed,
                *(dependency.remote for dependency in depends),
            )
        except BaseException as exc:
            _set_exception(job.future, exc)
            return
        job.payload = None
        with self._lock:
            self._live[job] = arguments
        self._launch(job)

    def _failed_dependency(self, job: Job, dependency: Job) -> bool:
        """Settle ``job`` now if ``dependency`` failed or was cancelled; True if so."""
        future = dependency.future
        if future.done():
            if future.cancelled():
                job.future.cancel()
                return True
            error = future.exception()
            if error is not None:
                _set_exception(job.future, error)
                return True
        if dependency.remote is None:
            _set_exception(
                job.future,
                TypeError(f"the result of {dependency.label} is not in this pool's cluster"),
            )
            return True
        return False

    def _launch(self, job: Job) -> None:
        with self._lock:
            arguments = self._live.get(job)
        if arguments is None:
            return
        key = task_key(job)
        try:
            remote = self._client.submit(*arguments, key=key, pure=False)
        except BaseException as exc:
            self._settle_error(job, exc)
            return
        job.remote = remote
        with self._lock:
            self._labels[key] = job.label
        self._client.loop.add_callback(self._follow, job, remote)

    # ── hearing back (coroutines on the client's event loop) ─────────────────────

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run ``coroutine`` on the client's event loop (from any thread)."""
        self._client.loop.add_callback(lambda: coroutine)

    async def _follow(self, job: Job, remote: Any) -> None:
        try:
            await self._heard(job, remote)
        except BaseException as exc:  # never leave a caller waiting for nothing
            self._forget(job)
            _set_exception(job.future, exc)
            raise

    async def _heard(self, job: Job, remote: Any) -> None:
        # Dask's own Future.add_done_callback() waits this way, on the client's loop.
        while remote.status in ("pending", "lost"):
            await remote._state.wait()
        status = remote.status
        if job.remote is not remote:  # submitted again meanwhile
            return
        if status == "finished":
            if isinstance(job.future, KeptFuture):
                job.future.keep(functools.partial(self._spawn_fetch, job, remote))
                self._forget(job, keep_remote=True)
            else:
                await self._fetch(job, remote)
        elif status == "error":
            try:
                error = await remote.exception()
            except BaseException as exc:
                error = exc
            self._settle_error(job, error)
        elif not job.cancel_requested:  # cancelled by Dask (a cancelled dependency...)
            self._forget(job)
            _set_exception(job.future, _cancel_error(job))

    def _spawn_fetch(self, job: Job, remote: Any) -> None:
        self._spawn(self._fetch(job, remote))

    async def _fetch(self, job: Job, remote: Any) -> None:
        try:
            value = await remote
        except BaseException as exc:
            self._settle_error(job, exc)
            return
        if isinstance(value, _cluster_worker.Skipped):
            self._forget(job)
            _set_exception(job.future, _cancel_error(job))
            return
        if not isinstance(job.future, KeptFuture):
            job.elapsed, value = value
        self._forget(job, keep_remote=isinstance(job.future, KeptFuture))
        if job.cancel_requested:
            return
        try:
            job.future.set_result(value)
        except cf.InvalidStateError:  # cancelled meanwhile: dropped
            pass

    def _settle_error(self, job: Job, error: BaseException) -> None:
        if isinstance(error, self._killed_worker):
            limit = self._retries if job.retries is None else job.retries
            if job.attempts < limit and not job.cancel_requested:
                job.attempts += 1
                self._launch(job)
                return
            with self._lock:
                task = self._labels.get(str(error.args[0]) if error.args else "", job.label)
            error = WorkerCrashedError(task)
        elif isinstance(error, Carried):
            # Dask's pickling (tblib) brings the worker's frames and the __cause__ chain
            # back with the exception; without them, the worker's traceback as text is
            # the cause, as on a local pool (concurrent.futures' convention).
            carried = error
            error = carried.load()
            if error.__traceback__ is None and error.__cause__ is None:
                error.__cause__ = _RemoteTraceback(carried.remote_traceback)  # type: ignore[arg-type]
        self._forget(job)
        if not job.cancel_requested or not isinstance(error, cf.CancelledError):
            _set_exception(job.future, error)

    def _forget(self, job: Job, *, keep_remote: bool = False) -> None:
        """The job is settled (or kept): let its arguments go; its Dask future too,
        unless its result stays in the cluster for whoever wants it."""
        with self._lock:
            self._live.pop(job, None)
            remote = job.remote
            if remote is not None:
                self._labels.pop(remote.key, None)
        if not keep_remote:
            job.remote = None

    # ── cancelling ─────────────────────────────────────────────────────────────────

    def try_cancel(self, job: Job) -> bool:
        """Cancel ``job`` unless it has finished; return whether it was cancelled.

        A task already running in a Dask worker cannot be interrupted there: it runs
        to its end, and its result is dropped.
        """
        future = job.future
        if isinstance(future, KeptFuture) and future.finished():
            return False
        if not future.cancel():
            return False
        job.cancel_requested = True
        self._spawn(self._stop([job], kill=False, wait=False))
        return True

    def cancel(self, job: Job, *, kill: bool) -> None:
        self.stop_jobs([job], kill=kill)

    def stop_jobs(self, jobs: Sequence[Job], *, kill: bool) -> list[Job]:
        """Cancel ``jobs`` in the cluster; their futures settle once none of them runs
        (``kill``: the workers that run them end). Return those not settled yet."""
        stopping = []
        for job in jobs:
            future = job.future
            if future.done() or (isinstance(future, KeptFuture) and future.finished()):
                continue
            job.cancel_requested = True
            stopping.append(job)
        if stopping:
            self._spawn(self._stop(stopping, kill=kill, wait=True))
        return stopping

    async def _stop(self, jobs: list[Job], *, kill: bool, wait: bool) -> None:
        try:
            remotes = [job.remote for job in jobs if job.remote is not None]
            if remotes:
                # In the client's loop, Client methods return coroutines.
                await self._client.cancel(remotes)
                keys = [remote.key for remote in remotes]
                stopping = self._client.run(_cluster_worker.stop, keys, kill, on_error="ignore")
                if wait or kill:
                    await stopping
                else:  # TaskRef.cancel(): the workers just must not start them
                    self._spawn(stopping)
        except Exception:  # the cluster is gone: nothing runs there for us any more
            logger.debug("stopping %d jobs failed", len(jobs), exc_info=True)
        finally:
            for job in jobs:
                self._forget(job)
                _set_exception(job.future, _cancel_error(job))

    # ── data placed once ───────────────────────────────────────────────────────────

    def store(self, job: Job, value: object) -> None:
        """Scatter ``value`` to the cluster as the kept result of ``job`` (blocks while
        it is sent, as ``put()`` does on a local pool while it copies)."""
        remote = self._client.scatter(value, hash=False)
        job.remote = remote
        assert isinstance(job.future, KeptFuture)
        job.future.keep(functools.partial(self._spawn_fetch, job, remote))

    # ── closing ────────────────────────────────────────────────────────────────────

    def close(self) -> None:
        """Cancel the pool's tasks in the cluster, wait (within a bound) for those
        running, remove the initializer plugin; close the client if ours. Blocks."""
        with self._lock:
            self._closed = True
            jobs = list(self._live)
        remotes = [job.remote for job in jobs if job.remote is not None]
        for job in jobs:
            job.cancel_requested = True
        with contextlib.suppress(Exception):
            if remotes:
                self._client.cancel(remotes)
                self._client.run(
                    _cluster_worker.stop,
                    [remote.key for remote in remotes],
                    False,
                    on_error="ignore",
                    callback_timeout=10,
                )
        for job in jobs:
            self._forget(job)
            _set_exception(job.future, RuntimeError(f"{job.label}: the pool was closed"))
        if self._plugin is not None:
            with contextlib.suppress(Exception):
                self._client.unregister_worker_plugin(self._plugin)
        if self._owned:
            with contextlib.suppress(Exception):
                self._client.close()

    def arena_segments(self) -> list[str]:
        return []

    def worker_pids(self) -> list[int]:
        """None: the Dask workers are not this process's children."""
        return []
