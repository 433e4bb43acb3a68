"""The in-process runner: what a pool runs in the calling process (inside a worker, the
default pool), with the results, errors, dependencies and cancellation of a real pool."""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import functools
import pathlib
import threading
from collections.abc import Iterator

import anyio
import pytest

import aiopar
from tests import workers


@pytest.fixture
def pool() -> Iterator[aiopar.Pool]:
    pool = aiopar.Pool(workers=1)
    pool._open_inline()
    yield pool
    pool.close()


def _lines(path: pathlib.Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


@pytest.mark.anyio
async def test_results_errors_and_dependencies(pool: aiopar.Pool) -> None:
    assert await pool.amap(workers.square, range(10)) == [x * x for x in range(10)]
    assert [x async for x in pool.imap(workers.double, range(5))] == [0, 2, 4, 6, 8]
    assert await pool.tree_reduce(workers.add, range(101)) == 5050
    a = pool.submit(workers.square, 3)
    b = pool.submit(workers.total, [a, {"k": a}], bonus=pool.submit(workers.double, 1))
    assert await b == 9 + 9 + 2
    with pytest.raises(ValueError, match="bad item 3"):
        await pool.amap(workers.fail_on, range(6))
    failed = pool.submit(workers.fail, 1)
    dependent = pool.submit(workers.add, failed, 1)
    with pytest.raises(ValueError, match="bad item 1"):
        await dependent
    assert pool.worker_pids() == []


@pytest.mark.anyio
async def test_arguments_and_results_are_copies_as_with_a_worker(pool: aiopar.Pool) -> None:
    items = ["mine"]
    assert await pool.submit(workers.mutate, items) == ["mine", "changed in the task"]
    assert items == ["mine"]
    with pytest.raises(TypeError, match="cannot be pickled to send it to a worker"):
        await pool.submit(workers.identity, threading.Lock())
    with pytest.raises(TypeError, match="cannot be pickled to send it back"):
        await pool.submit(workers.return_lock)


@pytest.mark.anyio
async def test_jobs_run_in_order_and_queued_ones_can_be_cancelled(
    pool: aiopar.Pool, tmp_path: pathlib.Path
) -> None:
    path = str(tmp_path / "runs.txt")
    refs = [pool.submit(workers.append_item, path, index) for index in range(5)]
    assert refs[3].cancel()
    assert refs[3].cancelled()
    with anyio.CancelScope() as scope:
        scope.cancel()
        await refs[4]  # cancelled while waiting: the queued task is dropped
    assert await aiopar.gather(*refs[:3]) == [0, 1, 2]
    with pytest.raises(cf.CancelledError):
        await refs[4]
    assert _lines(tmp_path / "runs.txt") == ["0", "1", "2"]


@pytest.mark.anyio
async def test_a_map_stopped_midway_runs_no_more_chunks(
    pool: aiopar.Pool, tmp_path: pathlib.Path
) -> None:
    path = tmp_path / "runs.txt"
    record = functools.partial(workers.append_item, str(path))
    seen = []
    async with contextlib.aclosing(pool.imap(record, range(50), chunksize=1)) as results:
        async for item in results:
            seen.append(item)
            if item == 2:
                break  # closing the iterator cancels what it has sent ahead
    assert seen == [0, 1, 2]
    ran = _lines(path)
    assert ran == [str(index) for index in range(len(ran))]
    assert len(ran) <= 3 + 4  # the chunks sent ahead (4 per worker) at most


def test_plain_code_runs_jobs_at_once(pool: aiopar.Pool) -> None:
    ref = pool.submit(workers.add, pool.submit(workers.square, 4), 1)
    assert ref.done()
    assert ref.future.result() == 17
    pool.close()
    with pytest.raises(RuntimeError, match="closed"):
        pool.submit(workers.square, 1)
