"""``Pool(max_tasks_per_child=N)``: workers retire after N jobs and are replaced.

CPython 3.11's ProcessPoolExecutor stops replacing retired workers once results have
piled up idle-worker tokens (gh-115634), so a pool with N >= 2 used to stall for good.
"""

from __future__ import annotations

import collections
import pathlib

import pytest

import aiopar
from tests import workers


def _assert_retired(pids: list[int], limit: int, workers_count: int) -> None:
    counts = collections.Counter(pids)
    assert max(counts.values()) <= limit, counts  # no worker ran more than its share
    assert len(counts) >= len(pids) // limit  # and each retired one was replaced
    assert len(counts) > workers_count


@pytest.mark.asyncio
@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("start_method", "tasks"),
    [("forkserver", 10), ("forkserver", 50), ("spawn", 10)],
)
async def test_retired_workers_are_replaced_and_every_task_runs_once(
    start_method: str, tasks: int
) -> None:
    async with aiopar.Pool(workers=2, max_tasks_per_child=2, start_method=start_method) as pool:
        refs = [pool.submit(workers.pid_and_value, x) for x in range(tasks)]
        results = await aiopar.gather(*refs)
        live = pool.worker_pids()
    assert [value for _, value in results] == list(range(tasks))
    pids = [pid for pid, _ in results]
    _assert_retired(pids, 2, 2)
    assert len(live) <= 2


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_retirement_mixed_with_maps() -> None:
    async with aiopar.Pool(workers=2, max_tasks_per_child=2) as pool:
        # chunksize=1: each item is one job, so each worker returns at most 2 pids
        pairs = await pool.amap(workers.pid_and_value, range(12), chunksize=1)
        refs = [pool.submit(workers.pid_and_value, x) for x in range(6)]
        squares = await pool.amap(workers.square, range(40), chunksize=3)
        more = await aiopar.gather(*refs)
    assert [value for _, value in pairs] == list(range(12))
    assert [value for _, value in more] == list(range(6))
    assert squares == [x * x for x in range(40)]
    _assert_retired([pid for pid, _ in pairs + more], 2, 2)


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_a_retiring_worker_is_not_a_crash_and_runs_nothing_twice(
    tmp_path: pathlib.Path,
) -> None:
    path = str(tmp_path / "runs.txt")
    async with aiopar.Pool(workers=2, max_tasks_per_child=3, retries=0) as pool:
        results = await aiopar.gather(*[pool.submit(workers.append_pid, path) for _ in range(20)])
    with open(path, encoding="utf-8") as file:
        lines = file.read().splitlines()
    assert len(lines) == 20  # each task ran exactly once
    assert sorted(lines) == sorted(str(pid) for pid in results)
    assert max(collections.Counter(lines).values()) <= 3
