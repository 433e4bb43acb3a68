"""The public calls on a Dask cluster (``Pool(cluster=...)``), side by side with a local pool.

The ``pool`` fixture runs each behaviour test twice: on 2 local worker processes and on
the session's LocalCluster (2 worker processes, see ``dask_cluster`` in conftest.py).
The tests that only make sense on a cluster (data kept there, cancelling Dask tasks,
a dead Dask worker) are in ``test_cluster_more.py``.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import os
import traceback
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import numpy as np
import pytest

import aiopar
from tests import cluster_workers, workers

pytest.importorskip("distributed")


@pytest.fixture(params=["local", "cluster"])
def pool(request: pytest.FixtureRequest) -> Iterator[aiopar.Pool]:
    if request.param == "local":  # its workers outlive the test, as the cluster's do
        yield aiopar.get_default_pool()
        return
    client = request.getfixturevalue("dask_client")
    client.wait_for_workers(2, timeout=60)  # after a test that killed one
    made = aiopar.Pool(cluster=client)
    made.open()
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def cluster_pool(dask_client: Any) -> Iterator[aiopar.Pool]:
    dask_client.wait_for_workers(2, timeout=60)
    made = aiopar.Pool(cluster=dask_client)
    made.open()
    try:
        yield made
    finally:
        made.close()


# ── the same behaviour as on local processes ──────────────────────────────────────


@pytest.mark.asyncio
async def test_amap_imap_starmap_give_the_results_of_map(pool: aiopar.Pool) -> None:
    assert await pool.amap(workers.square, range(50)) == [x * x for x in range(50)]
    assert sorted(await pool.amap(workers.square, range(20), ordered=False)) == sorted(
        x * x for x in range(20)
    )
    assert [y async for y in pool.imap(workers.double, range(30), max_inflight=4)] == [
        2 * x for x in range(30)
    ]
    assert await pool.starmap(pow, [(2, 5), (3, 2)]) == [32, 9]


@pytest.mark.asyncio
async def test_imap_reads_an_endless_source_with_back_pressure(pool: aiopar.Pool) -> None:
    taken = 0

    async def endless() -> AsyncIterator[int]:
        nonlocal taken
        n = 0
        while True:
            taken += 1
            yield n
            n += 1

    seen = []
    highest_lead = 0
    async with contextlib.aclosing(pool.imap(workers.square, endless(), max_inflight=6)) as it:
        async for value in it:
            seen.append(value)
            highest_lead = max(highest_lead, taken - len(seen))
            if len(seen) == 40:
                break
    assert seen == [x * x for x in range(40)]
    assert highest_lead <= 6


@pytest.mark.asyncio
async def test_submit_dag_gather_and_remote(pool: aiopar.Pool) -> None:
    a = pool.submit(workers.square, 3)
    b = pool.submit(workers.square, 4)
    c = pool.submit(workers.total, [a, (b,)], extra={"x": a})
    assert await c == 9 + 16 + 9
    assert await aiopar.gather(a, b, c) == [9, 16, 34]
    add = pool.remote(workers.add)
    assert await add.remote(add.remote(1, 2), 10) == 13


@pytest.mark.asyncio
async def test_amap_chunks_of_an_array(pool: aiopar.Pool) -> None:
    data = np.arange(1000.0)
    out = await pool.amap_chunks(workers.negate, data, chunks=4)
    assert np.array_equal(out, -data)
    assert await pool.amap_chunks(workers.sum_chunk, list(range(10)), combine=sum) == 45


@pytest.mark.asyncio
async def test_tree_reduce_ordered_unordered_with_refs(pool: aiopar.Pool) -> None:
    assert await pool.tree_reduce(workers.add, range(101)) == 5050
    words = [str(i) for i in range(9)]
    assert await pool.tree_reduce(workers.concat, words, chunksize=1) == "".join(words)
    refs = [pool.submit(workers.square, i) for i in range(6)]
    assert await pool.tree_reduce(workers.add, [*refs, 100], ordered=False) == 155
    with pytest.raises(TypeError, match="empty"):
        await pool.tree_reduce(workers.add, [])
    assert await pool.tree_reduce(workers.add, [], initial=7) == 7


@pytest.mark.asyncio
async def test_a_task_error_keeps_type_message_and_cause_chain(pool: aiopar.Pool) -> None:
    with pytest.raises(ValueError, match="outer 3") as caught:
        await pool.submit(cluster_workers.chained, 3)
    # The worker's traceback comes along: as its frames, or as text in the cause.
    assert 'raise ValueError(f"outer {x}") from error' in "".join(
        traceback.format_exception(caught.value)
    )
    if pool.cluster is not None:  # Dask brings the __cause__ chain back too
        assert isinstance(caught.value.__cause__, KeyError)
        assert "inner 3" in str(caught.value.__cause__)
    with pytest.raises(ValueError, match="outer 2"):
        await pool.amap(cluster_workers.chained, [1, 2][1:])
    # A failed dependency fails its dependents with the same error, without running them.
    failed = pool.submit(cluster_workers.chained, 5)
    dependent = pool.submit(workers.add, failed, 1)
    with pytest.raises(ValueError, match="outer 5"):
        await dependent


@pytest.mark.asyncio
async def test_as_completed_wait_and_put(pool: aiopar.Pool) -> None:
    refs = [pool.submit(workers.sleep_then, i, 0.05 * (3 - i)) for i in range(3)]
    seen = [await ref async for ref in aiopar.as_completed(refs)]
    assert sorted(seen) == [0, 1, 2]
    done, pending = await aiopar.wait(refs, num_returns=3)
    assert len(done) == 3 and not pending
    stored = pool.put(np.arange(10))
    assert np.array_equal(await stored, np.arange(10))
    assert await pool.submit(workers.sum_chunk, stored) == 45
    assert await pool.submit(workers.add, stored, stored) is not None


@pytest.mark.asyncio
async def test_initializer_and_worker_state(dask_client: Any) -> None:
    dask_client.wait_for_workers(2, timeout=60)
    async with aiopar.Pool(
        cluster=dask_client, initializer=workers.make_state, initargs=("ready",)
    ) as pool:
        states = await pool.amap(workers.get_state, range(8), chunksize=1)
        assert set(states) == {"ready-" + s.split("-", 1)[1] for s in states}
        assert all(s.startswith("ready-") for s in states)
        assert await pool.submit(workers.get_state) in states


@pytest.mark.asyncio
async def test_progress_bar_is_updated(pool: aiopar.Pool) -> None:
    class Bar:
        total = 0

        def update(self, n: int = 1) -> None:
            self.total += n

    bar = Bar()
    await pool.amap(workers.square, range(40), chunksize=7, progress=bar)
    assert bar.total == 40


# ── options ────────────────────────────────────────────────────────────────────────


def test_cluster_refuses_the_options_of_local_processes(dask_client: Any) -> None:
    for option in (
        {"workers": 2},
        {"start_method": "spawn"},
        {"max_tasks_per_child": 3},
        {"inline": True},
        {"executor": cf.ThreadPoolExecutor(1)},
    ):
        name = next(iter(option))
        with pytest.raises(ValueError, match=f"{name}=.*cluster"):
            aiopar.Pool(cluster=dask_client, **option)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="scheduler address"):
        aiopar.Pool(cluster=42)
    with pytest.raises(ValueError, match="empty"):
        aiopar.Pool(cluster="  ")


def test_the_default_pool_reads_aiopar_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    from aiopar import _cluster_options as _cluster

    monkeypatch.setenv("AIOPAR_CLUSTER", "not an address")
    with pytest.raises(ValueError, match="AIOPAR_CLUSTER"):
        _cluster.cluster_from_environment()
    monkeypatch.setenv("AIOPAR_CLUSTER", "tcp://10.1.2.3:8786")
    assert _cluster.cluster_from_environment() == "tcp://10.1.2.3:8786"
    monkeypatch.setenv("AIOPAR_CLUSTER", "")
    assert _cluster.cluster_from_environment() is None


def test_repr_names_the_cluster(cluster_pool: aiopar.Pool) -> None:
    assert "cluster=" in repr(cluster_pool)
    assert cluster_pool.workers == 2
    assert os.getpid() not in cluster_pool.worker_pids()


@pytest.mark.asyncio
async def test_results_on_trio_and_later_loops_too(cluster_pool: aiopar.Pool) -> None:
    # One pool, the loop of each backend in turn (anyio_backend parametrizes this test).
    assert await cluster_pool.amap(workers.square, [1, 2, 3]) == [1, 4, 9]
    ref = cluster_pool.submit(workers.add, 1, 2)
    with anyio.fail_after(30):
        assert await ref == 3
