"""What only a cluster pool does: data kept in the cluster, Dask tasks cancelled there,
a Dask worker that dies. On the session's LocalCluster (conftest.py: 2 worker processes
of 1 thread each; a task is given up at the first death of its worker)."""

from __future__ import annotations

import concurrent.futures as cf
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

import aiopar
from tests import cluster_workers, faulty, workers

pytest.importorskip("distributed")


@pytest.fixture
def cluster_pool(dask_client: Any) -> Iterator[aiopar.Pool]:
    dask_client.wait_for_workers(2, timeout=60)  # after a test that killed one
    made = aiopar.Pool(cluster=dask_client)
    made.open()
    try:
        yield made
    finally:
        made.close()


def _busy(client: Any) -> list[str]:
    """The aiopar tasks that run, or may still run, on the cluster's workers."""
    busy = client.run(cluster_workers.busy_keys, on_error="ignore")
    return [key for keys in busy.values() for key in keys]


# ── data stays in the cluster ──────────────────────────────────────────────────────


@pytest.mark.asyncio
async def test_results_pass_between_tasks_without_the_caller(
    cluster_pool: aiopar.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An Unpicklable cannot be pickled in this process: a result that went through the
    # caller on its way to a dependent task would fail the task.
    monkeypatch.setenv("AIOPAR_TEST_CALLER", str(os.getpid()))
    monkeypatch.setattr(cluster_workers, "rebuilt_in_caller", 0)
    a = cluster_pool.submit(cluster_workers.make_unpicklable, 2)
    b = cluster_pool.submit(cluster_workers.make_unpicklable, 3)
    c = cluster_pool.submit(cluster_workers.combine_unpicklable, a, b)
    d = cluster_pool.submit(cluster_workers.value_of, c, extra=1)
    assert await d == 6
    reduced = await cluster_pool.tree_reduce(
        cluster_workers.combine_unpicklable, [a, b, c, a], chunksize=1
    )
    assert reduced.value == 2 + 3 + 5 + 2
    # Only the awaited results came here: the reduction's root, not a, b, c or its steps.
    assert cluster_workers.rebuilt_in_caller == 1
    assert a.done()  # finished, its value still in the cluster ...
    assert (await a).value == 2  # ... until awaited
    assert cluster_workers.rebuilt_in_caller == 2


@pytest.mark.asyncio
async def test_put_scatters_once_for_many_tasks(cluster_pool: aiopar.Pool) -> None:
    np = pytest.importorskip("numpy")
    data = np.arange(200_000, dtype=np.float64)
    stored = cluster_pool.put(data)
    client = cluster_pool.cluster
    assert client.who_has([stored._job.remote])  # in the cluster
    sums = await aiopar.gather(*(cluster_pool.submit(workers.sum_chunk, stored) for _ in range(4)))
    assert sums == [data.sum()] * 4


@pytest.mark.asyncio
async def test_aiopar_calls_inside_a_cluster_task_run_in_that_worker(
    cluster_pool: aiopar.Pool,
) -> None:
    assert await cluster_pool.submit(workers.nested_sync, 3) == (10, 0)
    result, children = await cluster_pool.submit(workers.nested_asyncio, 4)
    assert result == ([0, 1, 4, 9], 16 + 8, 12, "ValueError") and children == 0


# ── cancelling and timeouts ────────────────────────────────────────────────────────


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_a_cancelled_queued_task_never_starts(
    cluster_pool: aiopar.Pool, tmp_path: Path
) -> None:
    blockers = [cluster_pool.submit(workers.sleep_then, i, 0.6) for i in range(2)]
    queued = cluster_pool.submit(cluster_workers.touch_then_sleep, str(tmp_path / "ran"), 0)
    assert queued.cancel()
    assert queued.cancelled()
    with pytest.raises(cf.CancelledError):
        await queued
    dependent = cluster_pool.submit(workers.add, queued, 1)  # depends on a cancelled task
    with pytest.raises(cf.CancelledError):
        await dependent
    assert await aiopar.gather(*blockers) == [0, 1]
    await anyio.sleep(0.3)
    assert not (tmp_path / "ran").exists()


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_a_timed_out_map_leaves_no_task_running(
    cluster_pool: aiopar.Pool, dask_client: Any, tmp_path: Path
) -> None:
    items = [(str(tmp_path), 0.3)] * 12
    with pytest.raises(TimeoutError):
        with anyio.fail_after(0.5):
            await cluster_pool.amap(cluster_workers.sleep_and_record, items, chunksize=1)
    assert _busy(dask_client) == []
    started = len(list(tmp_path.iterdir()))
    assert 1 <= started < len(items)
    await anyio.sleep(0.5)
    assert len(list(tmp_path.iterdir())) == started  # nothing started after the timeout


@pytest.mark.asyncio
@pytest.mark.timeout(90)
async def test_cancel_kill_restarts_the_workers_of_running_tasks(
    cluster_pool: aiopar.Pool, dask_client: Any
) -> None:
    before = set(dask_client.run(os.getpid).values())
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        with anyio.fail_after(1):
            await cluster_pool.amap(faulty.sleep_long, [60], cancel="kill")
    assert time.monotonic() - started < 50  # not the 60 s the task would take
    assert _busy(dask_client) == []
    dask_client.wait_for_workers(2, timeout=60)
    after = set(dask_client.run(os.getpid).values())
    assert len(before - after) == 1  # the worker that ran it was replaced, the other kept


# ── a Dask worker that dies ─────────────────────────────────────────────────────────


@pytest.mark.asyncio
@pytest.mark.timeout(90)
async def test_a_dead_worker_fails_its_task_with_worker_crashed_error(
    cluster_pool: aiopar.Pool, dask_client: Any
) -> None:
    ref = cluster_pool.submit(faulty.kill_self)
    with pytest.raises(aiopar.WorkerCrashedError, match=r"task kill_self#\d+") as caught:
        await ref
    assert caught.value.task.startswith("task kill_self#")
    assert await cluster_pool.amap(workers.square, [1, 2]) == [1, 4]  # the next call works


@pytest.mark.asyncio
@pytest.mark.timeout(90)
async def test_retries_submit_a_task_again_after_its_worker_died(
    dask_client: Any, tmp_path: Path
) -> None:
    marker = str(tmp_path / "runs")
    dask_client.wait_for_workers(2, timeout=60)
    async with aiopar.Pool(cluster=dask_client, retries=1) as pool:
        assert await pool.submit(faulty.crash_first_time, marker, 7) == 7
    assert Path(marker).read_text().count("run") == 2


@pytest.mark.asyncio
async def test_a_failing_initializer_fails_the_tasks_naming_it(dask_client: Any) -> None:
    async with aiopar.Pool(cluster=dask_client, initializer=workers.failing_initializer) as pool:
        with pytest.raises(RuntimeError, match="initializer failed") as caught:
            await pool.submit(workers.square, 2)
        assert "model file missing" in str(caught.value)
    # Its state is gone from the workers with the pool; a new pool starts clean.
    async with aiopar.Pool(cluster=dask_client) as pool:
        assert await pool.submit(workers.square, 2) == 4


# ── options ────────────────────────────────────────────────────────────────────────


def test_without_distributed_cluster_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ImportError, match=r"pip install 'aiopar\[dask\]'"):
        aiopar.Pool(cluster="tcp://127.0.0.1:8786")


@pytest.mark.asyncio
async def test_an_owned_client_from_an_address_is_closed_with_the_pool(
    dask_cluster: Any,
) -> None:
    pool = aiopar.Pool(cluster=dask_cluster.scheduler_address)
    async with pool:
        assert await pool.submit(workers.add, 2, 3) == 5
        client = pool._dispatcher.client  # type: ignore[union-attr]
        assert client.status == "running"
    assert client.status == "closed"


@pytest.mark.asyncio
async def test_a_user_client_is_left_open(dask_client: Any) -> None:
    async with aiopar.Pool(cluster=dask_client) as pool:
        assert await pool.amap(workers.square, [3]) == [9]
    assert dask_client.status == "running"


@pytest.mark.asyncio
async def test_the_default_pool_runs_on_aiopar_cluster(
    dask_cluster: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import aiopar._default

    monkeypatch.setattr(aiopar._default, "_pool", None)  # the session's local one aside
    monkeypatch.setenv("AIOPAR_CLUSTER", dask_cluster.scheduler_address)
    monkeypatch.setenv("AIOPAR_INLINE", "1")
    with pytest.raises(ValueError, match=r"AIOPAR_CLUSTER.*AIOPAR_INLINE"):
        aiopar.get_default_pool()
    monkeypatch.delenv("AIOPAR_INLINE")
    try:
        assert await aiopar.amap(workers.square, [1, 2, 3]) == [1, 4, 9]
        assert aiopar.get_default_pool().cluster == dask_cluster.scheduler_address
        assert await aiopar.submit(workers.add, aiopar.submit(workers.add, 1, 2), 3) == 6
    finally:
        await aiopar.shutdown()


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_a_cluster_of_threads_in_this_process_leaves_it_a_caller() -> None:
    # A LocalCluster(processes=False) runs the jobs in threads of the caller's process,
    # which stays a caller (it was left "a worker": later tests' default pools ran
    # in-process, and worker_state() answered None).
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0"
    ) as cluster:
        async with aiopar.Pool(cluster=str(cluster.scheduler_address)) as pool:
            assert await pool.amap(workers.double, range(4), chunksize=1) == [0, 2, 4, 6]
    assert not aiopar._worker.in_worker()
    with pytest.raises(RuntimeError, match="outside a worker"):
        aiopar.worker_state()
