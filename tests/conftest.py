"""Shared fixtures: backends, and a guard that fails any test leaking processes or segments.

Tests that must run on every backend use the anyio plugin (``@pytest.mark.anyio``) with
the ``anyio_backend`` fixture below: asyncio, asyncio on uvloop, and trio. Tests that
are about asyncio alone use pytest-asyncio (strict mode).
"""

from __future__ import annotations

import gc
import logging
import multiprocessing.forkserver
import multiprocessing.resource_tracker
import os
import time
from collections.abc import Iterator
from typing import Any

import psutil
import pytest

import aiopar._default

BACKENDS = [
    pytest.param(("asyncio", {}), id="asyncio"),
    pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"),
    pytest.param(("trio", {}), id="trio"),
]


@pytest.fixture(params=BACKENDS)
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, object]]:
    return request.param  # type: ignore[no-any-return]


def _infrastructure_pids() -> set[int]:
    """Processes meant to outlive a test: multiprocessing's helpers, default-pool workers,
    the worker processes of the session's Dask cluster (see ``dask_cluster``)."""
    pids = set()
    if _dask_cluster is not None:
        pids.update(_dask_worker_pids(_dask_cluster))
    forkserver = getattr(multiprocessing.forkserver._forkserver, "_forkserver_pid", None)
    tracker = getattr(multiprocessing.resource_tracker._resource_tracker, "_pid", None)
    pids.update(pid for pid in (forkserver, tracker) if pid)
    pool = aiopar._default._pool
    if pool is not None:
        pids.update(pool.worker_pids())
    return pids


def _children() -> set[int]:
    try:
        return {
            child.pid
            for child in psutil.Process().children(recursive=True)
            if child.status() != psutil.STATUS_ZOMBIE
        }
    except psutil.NoSuchProcess:
        return set()


def _infrastructure_segments() -> set[str]:
    """The default pool's arena: segments kept for reuse while the pool lives."""
    pool = aiopar._default._pool
    return set(pool.shared_memory_segments()) if pool is not None else set()


def _segments() -> set[str]:
    """This process's segments (aiopar names carry the pid of the process that made them)."""
    mine = f"-{os.getpid()}-"
    try:
        names = os.listdir("/dev/shm")
    except FileNotFoundError:
        return set()
    return {n for n in names if n.startswith("psm_") or (n.startswith("aiopar") and mine in n)}


_dask_cluster: Any = None


def _dask_worker_pids(cluster: Any) -> set[int]:
    """The processes of a LocalCluster's workers (each started by its nanny, which runs in
    this process) and what they started; a killed worker's replacement too."""
    pids = set()
    for nanny in list(cluster.workers.values()):
        process = getattr(nanny, "process", None)
        pid = getattr(process, "pid", None)
        if pid:
            pids.add(pid)
            try:
                pids.update(child.pid for child in psutil.Process(pid).children(recursive=True))
            except psutil.NoSuchProcess:
                pass
    return pids


@pytest.fixture(scope="session")
def dask_cluster() -> Iterator[Any]:
    """A Dask LocalCluster for the session: 2 worker processes of 1 thread each.

    Its scheduler gives a task up at the first death of its worker (allowed-failures
    0), so that a crash surfaces at once. Its worker processes outlive each test, and
    ``no_leaks`` counts them as infrastructure. Skipped when distributed is missing.
    """
    global _dask_cluster
    pytest.importorskip("distributed")
    import dask
    from distributed import LocalCluster

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",  # any free port: never a clash with another cluster
            silence_logs=logging.CRITICAL,
        )
    _dask_cluster = cluster
    try:
        yield cluster
    finally:
        _dask_cluster = None
        cluster.close()


@pytest.fixture(scope="session")
def dask_client(dask_cluster: Any) -> Iterator[Any]:
    """A ``distributed.Client`` of the session's cluster (not the default client)."""
    from distributed import Client

    client = Client(dask_cluster, set_as_default=False)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    """Fail the test if it leaves a child process or a shared-memory segment behind."""
    before_children = _children()
    before_segments = _segments()
    yield
    deadline = time.monotonic() + 5.0
    collect = False  # a full collection per test costs more than the check: only on need
    while True:
        if collect:
            gc.collect()  # result arrays in reference cycles hold their segments
        collect = True
        leaked = _children() - before_children - _infrastructure_pids()
        segments = _segments() - before_segments - _infrastructure_segments()
        if not leaked and not segments:
            return
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    details = []
    for pid in sorted(leaked):
        try:
            details.append(f"{pid}: {' '.join(psutil.Process(pid).cmdline())[:120]}")
        except psutil.NoSuchProcess:
            details.append(f"{pid}: gone")
    pytest.fail(
        f"test leaked child processes {details} and/or shared-memory segments {sorted(segments)}"
        f" (default pool keeps {sorted(_infrastructure_segments())})"
    )
