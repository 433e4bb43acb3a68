"""aiopar calls made inside a task: they run in that worker, in-process, in order.

Before, each worker started a default pool of its own (N² processes), the outer pool
could not close (each worker waited at exit for the workers of its own pool), and
``asyncio.run(amap(...))`` in a task printed a forkserver error.
"""

from __future__ import annotations

import pytest

import aiopar
from tests import workers

EXPECTED = ([0, 1, 4, 9], 16 + 8, 2 * (0 + 1 + 2 + 3), "ValueError")


@pytest.mark.anyio
@pytest.mark.timeout(60)
async def test_a_task_may_call_aiopar_from_plain_code() -> None:
    async with aiopar.Pool(workers=2) as pool:
        results = await pool.amap(workers.nested_sync, range(4), chunksize=1)
        remote = await pool.submit(workers.nested_remote, 7)
    assert results == [(x * x + 1, 0) for x in range(4)]  # no process started in a worker
    assert remote == 49


@pytest.mark.anyio
@pytest.mark.timeout(60)
async def test_a_task_may_run_an_event_loop_of_aiopar_calls() -> None:
    async with aiopar.Pool(workers=2) as pool:
        on_asyncio = [pool.submit(workers.nested_asyncio, 4) for _ in range(2)]
        on_trio = pool.submit(workers.nested_trio, 4)
        results = await aiopar.gather(*on_asyncio, on_trio)
    for value, children in results:
        assert value == EXPECTED
        assert children == 0


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_nested_calls_with_spawn_and_retiring_workers() -> None:
    async with aiopar.Pool(workers=2, start_method="spawn", max_tasks_per_child=2) as pool:
        results = await pool.amap(workers.nested_asyncio, [4, 4, 4], chunksize=1)
    assert results == [(EXPECTED, 0)] * 3
