"""Coroutine functions (``async def``) in the workers: each worker's own event loop.

The caller runs on asyncio, uvloop or trio (the anyio plugin); the worker side always
runs its own loop. Overlap is observed through a barrier in the worker, never through
timing: N coroutines wait until all N have arrived, which only happens when the worker
runs them at once.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

import aiopar
from tests import async_workers, workers

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def pool() -> Iterator[aiopar.Pool]:
    """Two workers, started before the tests that share them (so none counts them as
    leaked), for the tests that need no pool of their own."""
    shared = aiopar.Pool(2)
    shared.open()
    for _ in range(50):
        refs = [shared.submit(workers.square, x) for x in range(4)]
        for ref in refs:
            ref.future.result(timeout=60)
        if len(shared.worker_pids()) == 2:
            break
    yield shared
    shared.close()


def _key() -> str:
    """A barrier of its own (workers outlive a test)."""
    return os.urandom(8).hex()


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except FileNotFoundError:
        return []


async def _wait_for_lines(path: Path, prefix: str, count: int) -> None:
    while sum(line.startswith(prefix) for line in _lines(path)) < count:
        await anyio.sleep(0.01)


# ── maps ───────────────────────────────────────────────────────────────────────────


@pytest.mark.anyio
async def test_amap_runs_coroutines_of_a_chunk_at_once(pool: aiopar.Pool) -> None:
    assert await pool.amap(async_workers.double, range(250)) == [2 * x for x in range(250)]
    # 8 coroutines of one chunk wait for each other: all get past only if the
    # worker runs them at once.
    items = [(_key(), 8, 20.0)] * 8
    pids = await pool.amap(async_workers.barrier_item, items, chunksize=8, concurrency=8)
    assert len(set(pids)) == 1
    # One at a time, the first one waits for the others in vain.
    items = [(_key(), 2, 0.3)] * 2
    with pytest.raises(TimeoutError):
        await pool.amap(async_workers.barrier_item, items, chunksize=2, concurrency=1)
    # Streaming, and star-mapping, the same way.
    items = [(_key(), 5, 20.0)] * 5
    streamed = [pid async for pid in pool.imap(async_workers.barrier_item, items, chunksize=5)]
    assert streamed == [streamed[0]] * 5
    assert await pool.starmap(async_workers.add, [(1, 2), (3, 4)]) == [3, 7]


@pytest.mark.anyio
async def test_submitted_coroutine_tasks_run_together_in_a_worker() -> None:
    async with aiopar.Pool(1) as pool:
        assert await pool.submit(async_workers.add, 2, 3) == 5
        assert await pool.submit(functools.partial(async_workers.add, 2), 4) == 6
        key = _key()
        refs = [pool.submit(async_workers.barrier_item, (key, 6, 20.0)) for _ in range(6)]
        assert len(set(await aiopar.gather(*refs))) == 1
        remote = aiopar.remote(pool=pool)(async_workers.add)
        assert await remote.remote(remote.remote(1, 2), 10) == 13
        assert await pool.tree_reduce(async_workers.add, range(50)) == sum(range(50))
        assert await pool.amap_chunks(async_workers.piece_sum, list(range(10)), chunks=2) == [
            sum(range(5)),
            sum(range(5, 10)),
        ]


@pytest.mark.anyio
async def test_default_chunks_feed_the_concurrency(pool: aiopar.Pool) -> None:
    # 12 items, 2 workers, concurrency 6: two chunks of 6 that each run at once.
    items = [(_key(), 6, 20.0)] * 12
    assert len(await pool.amap(async_workers.barrier_item, items, concurrency=6)) == 12
    # The pool's concurrency is the default of its calls (here, in-process): one at a
    # time, the first waits in vain for the second.
    async with aiopar.Pool(inline=True, concurrency=1) as inline:
        with pytest.raises(TimeoutError):
            await inline.amap(async_workers.barrier_item, [(_key(), 2, 0.3)] * 2, chunksize=2)
        items = [(_key(), 2, 20.0)] * 2
        assert (
            await inline.amap(async_workers.barrier_item, items, chunksize=2, concurrency=2)
            == [os.getpid()] * 2
        )


# ── worker state ───────────────────────────────────────────────────────────────────


@pytest.mark.asyncio
async def test_async_generator_initializer_is_shared_and_closed_at_the_end(
    tmp_path: Path,
) -> None:
    log = tmp_path / "session.log"
    async with aiopar.Pool(2, initializer=async_workers.session, initargs=(str(log),)) as pool:
        infos = await pool.amap(async_workers.state_info, range(40), chunksize=5)
        refs = [pool.submit(async_workers.state_info) for _ in range(10)]
        infos += await aiopar.gather(*refs)
    tokens_by_pid: dict[int, set[str]] = {}
    for pid, token, state_pid, same_loop in infos:
        assert pid == state_pid and same_loop
        tokens_by_pid.setdefault(pid, set()).add(token)
    assert all(len(tokens) == 1 for tokens in tokens_by_pid.values())  # one per worker
    opened = sorted(line.split(" ", 1)[1] for line in _lines(log) if line.startswith("open"))
    closed = sorted(line.split(" ", 1)[1] for line in _lines(log) if line.startswith("close"))
    assert len(opened) == 2 and closed == opened  # every worker closed its own


@pytest.mark.anyio
async def test_async_initializer_state_and_inline_pool(tmp_path: Path) -> None:
    async with aiopar.Pool(1, initializer=async_workers.plain_async_state, initargs=("s",)) as pool:
        pid, token, state_pid, same_loop = await pool.submit(async_workers.state_info)
        assert (token, state_pid, same_loop) == ("s", pid, True) and pid != os.getpid()
    log = tmp_path / "inline.log"
    inline = aiopar.Pool(inline=True, initializer=async_workers.session, initargs=(str(log),))
    async with inline:
        assert await inline.amap(async_workers.double, range(5)) == [0, 2, 4, 6, 8]
        assert await inline.submit(async_workers.add, 1, 1) == 2
        infos = await inline.amap(async_workers.state_info, range(3))
        assert {info[0] for info in infos} == {os.getpid()}
        assert all(info[3] for info in infos)
        assert len({info[1] for info in infos}) == 1
        with pytest.raises(ValueError, match="async item 3 is bad"):
            await inline.amap(async_workers.fail_on, range(5))
    assert [line.split()[0] for line in _lines(log)] == ["open", "close"]


# ── cancellation ───────────────────────────────────────────────────────────────────


@pytest.mark.anyio
@pytest.mark.timeout(30)
async def test_cancelling_the_caller_cancels_the_coroutines_in_the_workers(
    tmp_path: Path, pool: aiopar.Pool
) -> None:
    log = tmp_path / "cancel.log"
    pids = sorted(pool.worker_pids())
    with anyio.CancelScope() as scope:

        async def cancel_when_all_started() -> None:
            await _wait_for_lines(log, "start", 4)
            scope.cancel()

        async with anyio.create_task_group() as group:
            group.start_soon(cancel_when_all_started)
            await pool.amap(async_workers.wait_forever, [str(log)] * 4, chunksize=2)
    assert scope.cancelled_caught
    # cancel="wait" awaited the running chunks: their coroutines saw the
    # cancellation and ran their finally blocks, each in a worker that lives on.
    lines = _lines(log)
    assert lines.count("cancelled") == 4 and lines.count("finally") == 4
    assert {int(line.split()[1]) for line in lines if line.startswith("start")} == set(pids)
    assert sorted(pool.worker_pids()) == pids
    # A task, cancelled by a timeout.
    with anyio.move_on_after(60) as timeout_scope:
        ref = pool.submit(async_workers.wait_forever, str(log))

        async def cancel_when_started() -> None:
            await _wait_for_lines(log, "start", 5)
            timeout_scope.cancel()

        async with anyio.create_task_group() as group:
            group.start_soon(cancel_when_started)
            await ref
    assert _lines(log).count("finally") == 5
    assert sorted(pool.worker_pids()) == pids
    assert await pool.amap(async_workers.double, [1, 2]) == [2, 4]


@pytest.mark.anyio
@pytest.mark.timeout(30)
async def test_cancelling_one_task_leaves_the_others_of_its_worker_running(
    tmp_path: Path, pool: aiopar.Pool
) -> None:
    log, flag = tmp_path / "tasks.log", tmp_path / "flag"
    refs = [pool.submit(async_workers.wait_for_file, str(log), str(flag)) for _ in range(3)]

    async def release_the_others() -> None:
        await _wait_for_lines(log, "cancelled", 1)
        flag.touch()

    async with anyio.create_task_group() as outer:
        outer.start_soon(release_the_others)
        with anyio.CancelScope() as scope:

            async def cancel_when_all_started() -> None:
                await _wait_for_lines(log, "start", 3)
                scope.cancel()

            async with anyio.create_task_group() as group:
                group.start_soon(cancel_when_all_started)
                await refs[0]
    assert refs[0].cancelled()
    assert await aiopar.gather(*refs[1:]) == ["done", "done"]
    assert _lines(log).count("cancelled") == 1


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_cancel_kill_still_kills_the_worker(tmp_path: Path) -> None:
    log = tmp_path / "kill.log"
    async with aiopar.Pool(1, cancel="kill") as pool:
        with anyio.CancelScope() as scope:

            async def cancel_when_started() -> None:
                await _wait_for_lines(log, "start", 1)
                scope.cancel()

            async with anyio.create_task_group() as group:
                group.start_soon(cancel_when_started)
                await pool.amap(async_workers.wait_forever, [str(log)])
        started = int(_lines(log)[0].split()[1])
        assert "finally" not in _lines(log)  # killed, not cancelled
        assert await pool.submit(async_workers.add, 1, 2) == 3
        assert started not in pool.worker_pids()


# ── errors and crashes ─────────────────────────────────────────────────────────────


@pytest.mark.anyio
async def test_exceptions_keep_type_message_and_worker_traceback(pool: aiopar.Pool) -> None:
    with pytest.raises(ValueError, match="async item 3 is bad") as info:
        await pool.amap(async_workers.fail_on, range(10))
    assert "in fail_on" in str(info.value.__cause__)
    with pytest.raises(ValueError, match="async item 1 is bad") as info:
        await pool.submit(async_workers.fail_on, 1, bad=1)
    assert "in fail_on" in str(info.value.__cause__)
    assert await pool.amap(async_workers.fail_on, range(3)) == [0, 1, 2]


@pytest.mark.asyncio
async def test_a_failing_async_initializer_fails_the_tasks_with_its_error() -> None:
    async with aiopar.Pool(1, initializer=async_workers.failing_initializer) as pool:
        with pytest.raises(RuntimeError, match=r"initializer failed.*OSError: no network"):
            await pool.submit(async_workers.double, 1)
        with pytest.raises(RuntimeError, match=r"initializer failed.*OSError: no network"):
            await pool.amap(async_workers.double, range(3))


@pytest.mark.asyncio
@pytest.mark.timeout(40)
async def test_a_crash_fails_only_the_coroutines_that_were_running(tmp_path: Path) -> None:
    log = tmp_path / "done.log"
    async with aiopar.Pool(1) as pool:
        await pool.submit(async_workers.add, 0, 0)  # the worker is up
        interval = sys.getswitchinterval()
        sys.setswitchinterval(1.0)  # the submits below reach the dispatcher as one burst
        try:
            quick = [pool.submit(async_workers.quick_logged, str(log), x) for x in range(4)]
            slow = [pool.submit(async_workers.sleep_long, x) for x in range(2)]
            crash = pool.submit(async_workers.crash_after, str(log), 4)
        finally:
            sys.setswitchinterval(interval)
        results = await aiopar.gather(*quick, *slow, crash, return_exceptions=True)
    assert results[:4] == [0, 1, 2, 3]  # finished before the crash: sent again
    for error in results[4:]:  # running when the worker died
        assert isinstance(error, aiopar.WorkerCrashedError), error


# ── what is refused, and the plain path ────────────────────────────────────────────


@pytest.mark.anyio
async def test_async_generators_and_concurrency_for_plain_functions_are_refused(
    pool: aiopar.Pool,
) -> None:
    with pytest.raises(TypeError, match=r"async generator function.*returns a list"):
        await pool.amap(async_workers.async_gen_func, range(3))
    with pytest.raises(TypeError, match="async generator function"):
        pool.submit(async_workers.async_gen_func, 1)
    with pytest.raises(TypeError, match="concurrency=4 bounds the coroutines"):
        await pool.amap(workers.square, range(3), concurrency=4)
    with pytest.raises(ValueError, match="concurrency must be at least 1"):
        await pool.amap(async_workers.double, range(3), concurrency=0)
    with pytest.raises(TypeError, match="returned a coroutine instead of a result"):
        await pool.amap(async_workers.returns_a_coroutine, range(3))
    with pytest.raises(ValueError, match="concurrency"):
        aiopar.Pool(1, concurrency=0)


@pytest.mark.asyncio
async def test_plain_functions_start_no_loop_in_their_workers() -> None:
    async with aiopar.Pool(1) as pool:
        assert await pool.submit(async_workers.loop_threads) == []
        assert await pool.amap(workers.square, range(5)) == [0, 1, 4, 9, 16]
        assert await pool.submit(async_workers.loop_threads) == []
        await pool.submit(async_workers.double, 1)
        assert await pool.submit(async_workers.loop_threads) == ["aiopar-worker-loop"]
