"""Cancellation and timeouts: queued work never starts, running work is awaited or killed."""

from __future__ import annotations

import asyncio
import os
import time

import anyio
import pytest

import aiopar
from tests import workers, workers_extra


def _lines(path: object) -> int:
    try:
        with open(str(path)) as f:
            return len(f.readlines())
    except FileNotFoundError:
        return 0


def _count(path: object, word: str) -> int:
    try:
        with open(str(path)) as f:
            return sum(1 for line in f if line.strip() == word)
    except FileNotFoundError:
        return 0


@pytest.mark.asyncio
async def test_timeout_on_amap_drops_queued_chunks_and_waits_for_running(tmp_path) -> None:  # type: ignore[no-untyped-def]
    log = tmp_path / "log.txt"
    async with aiopar.Pool(workers=2) as pool:
        with anyio.CancelScope() as scope:

            async def cancel_once_started() -> None:
                while _count(log, "start") == 0:
                    await anyio.sleep(0.01)
                scope.cancel()

            async with anyio.create_task_group() as group:
                group.start_soon(cancel_once_started)
                await pool.amap(workers_extra.log_then_sleep, [str(log)] * 20, chunksize=1)
        assert scope.cancelled_caught
        # cancel="wait": every chunk that started was awaited to its end before we got here
        started = _count(log, "start")
        assert 1 <= started <= 4
        assert _count(log, "end") == started
        await anyio.sleep(0.6)
        assert _count(log, "start") == started  # nothing queued started afterwards
        assert await pool.amap(workers.square, [2]) == [4]


@pytest.mark.asyncio
async def test_cancel_kill_terminates_running_work_and_replaces_workers(tmp_path) -> None:  # type: ignore[no-untyped-def]
    log = tmp_path / "log.txt"
    async with aiopar.Pool(workers=2, cancel="kill") as pool:
        await pool.amap(workers.square, range(4), chunksize=1)  # start both workers
        before = set(pool.worker_pids())
        task = asyncio.ensure_future(
            pool.amap(workers_extra.log_then_sleep, [str(log)] * 4, chunksize=1)
        )
        while _count(log, "start") == 0:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await anyio.sleep(0.8)
        assert _count(log, "end") == 0  # no running chunk got to finish
        assert len(await pool.amap(workers.pid, range(2), chunksize=1)) == 2  # pool works
        assert set(pool.worker_pids()) != before  # the killed worker was replaced


@pytest.mark.asyncio
async def test_cancelling_an_awaited_taskref_cancels_the_task(tmp_path) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "ran.txt"
    async with aiopar.Pool(workers=1) as pool:
        blocker = pool.submit(workers.sleep_then, "b", 0.4)
        other = pool.submit(workers.sleep_then, "o", 0.01)  # fills the executor slot
        queued = pool.submit(workers.append_line, str(marker))
        with anyio.move_on_after(0.1) as scope:
            await queued
        assert scope.cancelled_caught
        assert queued.cancelled()
        assert await blocker == "b" and await other == "o"
    assert not marker.exists()


@pytest.mark.asyncio
async def test_closing_imap_early_stops_its_work(tmp_path) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "done.txt"
    async with aiopar.Pool(workers=2) as pool:
        stream = pool.imap(workers.mark_sleep, [str(marker)] * 30, chunksize=1)
        first = await anext(stream)
        await stream.aclose()
        settled = _lines(marker)
        await anyio.sleep(0.8)
        assert _lines(marker) == settled < 30
        assert first == str(marker)


@pytest.mark.asyncio
async def test_pool_exit_cancels_queued_tasks(tmp_path) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "ran.txt"
    async with aiopar.Pool(workers=1) as pool:
        pool.submit(workers.sleep_then, 0, 0.3)
        pool.submit(workers.sleep_then, 0, 0.01)
        late = [pool.submit(workers.append_line, str(marker)) for _ in range(5)]
    assert all(ref.cancelled() or ref.done() for ref in late)
    assert _lines(marker) == 0
    for pid in pool.worker_pids():
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


@pytest.mark.anyio
@pytest.mark.parametrize("ordered", [True, False])
async def test_imap_whose_results_are_ready_still_honours_a_timeout(ordered: bool) -> None:
    # The body blocks (never awaits), so by the time the consumer asks for the next
    # chunk its result is ready: imap must still give the loop a turn, where the
    # timeout is delivered, instead of running through all 40 items.
    consumed = 0
    async with aiopar.Pool(workers=1) as pool:
        await pool.submit(workers.square, 1)  # the worker is up
        with anyio.move_on_after(0.2):
            async for _ in pool.imap(workers.square, range(40), chunksize=1, ordered=ordered):
                consumed += 1
                time.sleep(0.05)
    assert consumed < 40
