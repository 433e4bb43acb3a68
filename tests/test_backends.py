"""Every entry point works the same on asyncio, uvloop and trio.

The tests marked ``anyio`` run once per backend (see ``anyio_backend`` in conftest.py),
all on the default pool, which outlives each test's event loop. The last test shows
one explicit Pool serving an asyncio run and then a trio run.

No timing is asserted. Where the order of events matters, a worker waits for a file
that the test creates when it is ready (``workers_extra.wait_for_file``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import contextlib
import functools
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import sniffio

import aiopar
from tests import workers, workers_extra

SQUARES = [x * x for x in range(30)]


@contextlib.asynccontextmanager
async def two_workers() -> AsyncIterator[aiopar.Pool]:
    """The default pool if it has two workers or more, else a pool of two."""
    pool = aiopar.get_default_pool()
    if pool.workers >= 2:
        yield pool
    else:
        async with aiopar.Pool(workers=2) as small:
            yield small


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


@pytest.mark.anyio
async def test_runs_on_the_requested_backend(anyio_backend: tuple[str, dict[str, Any]]) -> None:
    name, options = anyio_backend
    assert sniffio.current_async_library() == name
    if options.get("use_uvloop"):
        import uvloop

        assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
    assert await aiopar.amap(workers.square, [7]) == [49]


# ── amap / imap ──────────────────────────────────────────────────────────────────────


@pytest.mark.anyio
async def test_amap_over_sync_and_async_iterables() -> None:
    async def numbers() -> AsyncIterator[int]:
        for x in range(30):
            yield x
            await anyio.sleep(0)

    assert await aiopar.amap(workers.square, range(30)) == SQUARES
    assert await aiopar.amap(workers.square, iter(range(30)), chunksize=7) == SQUARES
    assert await aiopar.amap(workers.square, numbers()) == SQUARES
    assert await aiopar.amap(workers.square, numbers(), chunksize=4) == SQUARES
    assert await aiopar.amap(workers.square, []) == []
    unordered = await aiopar.amap(workers.square, numbers(), chunksize=1, ordered=False)
    assert sorted(unordered) == SQUARES


@pytest.mark.anyio
async def test_unordered_imap_yields_results_as_they_finish(tmp_path: Path) -> None:
    release = tmp_path / "release"
    # Item 0 holds one worker until the test creates `release`; the others run on the
    # other worker. Unordered, they must come out first.
    items = [(str(release), "held"), (None, "a"), (None, "b"), (None, "c")]
    got: list[str] = []
    async with two_workers() as pool:
        with anyio.fail_after(30):
            stream = aiopar.imap(
                workers_extra.wait_for_file, items, chunksize=1, ordered=False, pool=pool
            )
            # imap is typed AsyncIterator but is an async generator: it has aclose()
            async with contextlib.aclosing(stream):
                async for value in stream:
                    got.append(value)
                    if len(got) == 3:
                        release.touch()
    assert sorted(got[:3]) == ["a", "b", "c"]
    assert got[3] == "held"


@pytest.mark.anyio
async def test_imap_reads_an_endless_source_only_as_fast_as_it_is_consumed() -> None:
    pulled = 0

    async def endless() -> AsyncGenerator[int, None]:
        nonlocal pulled
        x = 0
        while True:
            pulled += 1
            yield x
            x += 1

    got = []
    async with contextlib.aclosing(endless()) as source:  # ours to close, not imap's
        stream = aiopar.imap(workers.square, source, chunksize=1, max_inflight=3)
        async with contextlib.aclosing(stream):
            async for value in stream:
                got.append(value)
                # never more than max_inflight items taken and not yet yielded
                assert pulled <= len(got) + 3
                if len(got) == 20:
                    break
    assert got == [x * x for x in range(20)]
    assert pulled <= 23


@pytest.mark.anyio
async def test_imap_in_order_over_an_async_source() -> None:
    async def numbers() -> AsyncIterator[int]:
        for x in range(30):
            yield x

    got = [y async for y in aiopar.imap(workers.square, numbers(), chunksize=4)]
    assert got == SQUARES


# ── tasks ────────────────────────────────────────────────────────────────────────────


@pytest.mark.anyio
async def test_submit_with_dependencies() -> None:
    a = aiopar.submit(workers.square, 3)  # 9
    b = aiopar.submit(workers.add, a, 1)  # 10
    c = aiopar.submit(workers.total, [a, b], {"k": a}, extra=(b,))  # 9 + 10 + 9 + 10
    d = aiopar.submit(workers.add, b, c)  # 48
    assert await d == 48
    assert await aiopar.gather(a, b, c) == [9, 10, 38]
    assert a.done() and d.done()

    add = aiopar.remote(workers.add)
    assert add(1, 2) == 3  # still a local call
    assert await add.remote(a, add.remote(b, 2)) == 21


@pytest.mark.anyio
async def test_gather_keeps_order_and_mixes_refs_with_awaitables() -> None:
    async def later(value: int) -> int:
        await anyio.sleep(0)
        return value

    refs = [aiopar.submit(workers.square, x) for x in range(5)]
    got = await aiopar.gather(refs[4], later(-1), *refs[:4])
    assert got == [16, -1, 0, 1, 4, 9]
    assert await aiopar.gather() == []


@pytest.mark.anyio
async def test_gather_with_return_exceptions_returns_failures_in_place(tmp_path: Path) -> None:
    never = tmp_path / "never-written"
    good = aiopar.submit(workers.square, 6)
    bad = aiopar.submit(workers.fail, "x")
    # depends on a failed task: fails the same way, without running
    dependent = aiopar.submit(workers.mark_sleep, str(never), bad)
    got = await aiopar.gather(good, bad, dependent, return_exceptions=True)
    assert got[0] == 36
    assert type(got[1]) is ValueError
    assert str(got[1]) == "bad item 'x'"
    assert type(got[2]) is ValueError
    assert str(got[2]) == "bad item 'x'"
    assert not never.exists()
    with pytest.raises(ValueError, match="bad item 'x'"):
        await dependent


@pytest.mark.anyio
async def test_gather_raises_the_first_failure_and_cancels_the_rest() -> None:
    cancelled = anyio.Event()

    async def forever() -> None:
        try:
            await anyio.sleep_forever()
        finally:
            cancelled.set()

    with anyio.fail_after(30):
        with pytest.raises(ValueError, match="bad item 3"):
            await aiopar.gather(
                aiopar.submit(workers.square, 2), forever(), aiopar.submit(workers.fail, 3)
            )
    assert cancelled.is_set()


# ── waking the loop ──────────────────────────────────────────────────────────────────


@contextlib.contextmanager
def counted_wakes() -> Any:
    """Count the calls that the watchers made meanwhile ask the event loop to run."""
    from aiopar import _waiting

    calls: list[int] = []
    original = _waiting._threadsafe_scheduler

    def counting() -> Any:
        schedule = original()

        def wrapped(callback: Any) -> None:
            calls.append(1)
            schedule(callback)

        return wrapped

    _waiting._threadsafe_scheduler = counting  # type: ignore[assignment]
    try:
        yield calls
    finally:
        _waiting._threadsafe_scheduler = original  # type: ignore[assignment]


async def wake_handled(watcher: Any) -> None:
    """Let the event loop run the wake-up the watcher asked for, if any (5 s at most)."""
    for _ in range(5000):
        if not watcher._wake_scheduled:
            return
        await anyio.sleep(0.001)
    raise AssertionError("the event loop never ran the wake-up")


def finish_from_a_thread(*steps: tuple[cf.Future[Any], object]) -> None:
    """Set each future's result (or exception) from another thread, one by one."""

    def run() -> None:
        for future, outcome in steps:
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)

    with cf.ThreadPoolExecutor(1) as thread:
        thread.submit(run).result()


@pytest.mark.anyio
async def test_a_gather_of_tasks_wakes_the_loop_once_not_per_result() -> None:
    pool = aiopar.get_default_pool()
    with counted_wakes() as wakes:
        assert await aiopar.gather(*(pool.submit(workers.square, i) for i in range(20))) == [
            i * i for i in range(20)
        ]
    assert len(wakes) == 1


@pytest.mark.anyio
async def test_a_silent_watch_wakes_the_loop_on_a_failure_and_on_the_last_success() -> None:
    from aiopar._waiting import FutureWatcher

    silent = [cf.Future[Any]() for _ in range(4)]
    loud = cf.Future[Any]()
    with counted_wakes() as wakes:
        watcher = FutureWatcher()
        watcher.watch_all(silent, wake_on_success=False)
        watcher.watch(loud)
        finish_from_a_thread((silent[0], 0), (silent[1], 1))
        assert wakes == []  # successes, not the last: nobody woken
        finish_from_a_thread((loud, "loud"))
        assert len(wakes) == 1  # an ordinary watch wakes the loop
        await wake_handled(watcher)
        assert [await watcher.next_finished() for _ in range(3)] == [silent[0], silent[1], loud]
        finish_from_a_thread((silent[2], ValueError("boom")))
        assert len(wakes) == 2  # a failure wakes it at once
        await wake_handled(watcher)
        assert await watcher.next_finished() is silent[2]
        finish_from_a_thread((silent[3], 3))
        assert len(wakes) == 3  # the last one
        assert await watcher.next_finished() is silent[3]


@pytest.mark.anyio
async def test_futures_finished_before_the_loop_runs_the_wake_share_it() -> None:
    from aiopar._waiting import FutureWatcher

    futures = [cf.Future[Any]() for _ in range(5)]
    with counted_wakes() as wakes:
        watcher = FutureWatcher()
        watcher.watch_all(futures)
        finish_from_a_thread(*((future, i) for i, future in enumerate(futures)))
        assert len(wakes) == 1  # the loop has not run the first wake yet
        await wake_handled(watcher)
        assert [await watcher.next_finished() for _ in futures] == futures
        late = cf.Future[Any]()
        watcher.watch(late)
        finish_from_a_thread((late, "late"))
        assert len(wakes) == 2  # after a wake has run, the next result needs one again
        assert await watcher.next_finished() is late


# ── tree_reduce ──────────────────────────────────────────────────────────────────────


@pytest.mark.anyio
async def test_tree_reduce_of_plain_values() -> None:
    assert await aiopar.tree_reduce(workers.add, range(100)) == 4950
    assert await aiopar.tree_reduce(workers.add, range(100), ordered=False) == 4950
    letters = [chr(ord("a") + i % 26) for i in range(60)]
    assert await aiopar.tree_reduce(workers.concat, letters, chunksize=2) == "".join(letters)
    assert await aiopar.tree_reduce(workers.concat, [], initial="") == ""
    assert await aiopar.tree_reduce(workers.concat, ["b"], initial="a") == "ab"
    with pytest.raises(TypeError):
        await aiopar.tree_reduce(workers.add, [])


@pytest.mark.anyio
async def test_tree_reduce_of_taskrefs_and_awaitables() -> None:
    async def later(value: str) -> str:
        await anyio.sleep(0)
        return value

    refs = [aiopar.submit(workers.square, x) for x in range(10)]
    assert await aiopar.tree_reduce(workers.add, refs) == sum(x * x for x in range(10))
    refs = [aiopar.submit(workers.square, x) for x in range(10)]
    assert await aiopar.tree_reduce(workers.add, refs, ordered=False) == 285

    items: list[Any] = ["a", aiopar.submit(workers.concat, "b", "c"), later("d"), "e", "f"]
    assert await aiopar.tree_reduce(workers.concat, items) == "abcdef"


@pytest.mark.anyio
@pytest.mark.parametrize("ordered", [True, False], ids=["ordered", "unordered"])
async def test_tree_reduce_counts_a_repeated_pending_taskref_each_time(ordered: bool) -> None:
    # functools.reduce(add, [5, 5, 1]) == 11: the same ref twice is two items. The ref
    # is still running when the reduction starts.
    ref = aiopar.submit(workers.sleep_then, 5, 0.3)
    got = await aiopar.tree_reduce(workers.add, [ref, ref, 1], ordered=ordered)
    assert got == 11


@pytest.mark.anyio
async def test_tree_reduce_raises_a_failing_item() -> None:
    items = [1, aiopar.submit(workers.fail, 2), 3]
    with pytest.raises(ValueError, match="bad item 2"):
        await aiopar.tree_reduce(workers.add, items)


# ── cancellation ─────────────────────────────────────────────────────────────────────


@pytest.mark.anyio
@pytest.mark.parametrize("how", ["fail_after", "move_on_after"])
async def test_timeout_cancels_a_slow_amap_and_the_pool_still_works(
    how: str, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    # 8 chunks of 0.4 s on the workers: far longer than the 0.1 s timeout
    slow = functools.partial(aiopar.amap, workers_extra.log_then_sleep, [str(log)] * 8, chunksize=1)
    if how == "fail_after":
        with pytest.raises(TimeoutError):
            with anyio.fail_after(0.1):
                await slow()
    else:
        with anyio.move_on_after(0.1) as scope:
            await slow()
            pytest.fail("the amap finished before its timeout")  # pragma: no cover
        assert scope.cancelled_caught

    after_cancel = lines(log)
    # the call returned only once the chunks that had started were over (cancel="wait")
    assert after_cancel.count("start") == after_cancel.count("end")
    assert after_cancel.count("start") < 8

    # the pool still works, and none of the dropped chunks starts later
    assert await aiopar.amap(workers.square, range(30)) == SQUARES
    assert await aiopar.submit(workers.add, 2, 3) == 5
    await anyio.sleep(0.2)
    assert lines(log) == after_cancel


@pytest.mark.anyio
async def test_cancelling_an_awaited_taskref_leaves_the_pool_working() -> None:
    ref = aiopar.submit(workers.sleep_then, "slow", 0.4)
    with anyio.move_on_after(0.05) as scope:
        await ref
    assert scope.cancelled_caught
    assert ref.done()  # waited for (cancel="wait"), result dropped or cancelled
    assert await aiopar.submit(workers.square, 5) == 25


@contextlib.asynccontextmanager
async def all_workers_held(tmp_path: Path) -> AsyncIterator[list[aiopar.TaskRef[int]]]:
    """Keep every worker of the default pool busy until the block ends.

    Work submitted inside the block queues behind the holders, so it cannot begin
    until they are released, whatever the speed of the machine.
    """
    release = tmp_path / "release"
    workers_count = aiopar.get_default_pool().workers
    holders = [
        aiopar.submit(workers_extra.wait_for_file, (str(release), i)) for i in range(workers_count)
    ]
    try:
        yield holders
    finally:
        release.touch()
        with anyio.CancelScope(shield=True):
            assert await aiopar.gather(*holders) == list(range(workers_count))


async def boom() -> None:
    await anyio.sleep(0.05)
    raise KeyError("boom")


@pytest.mark.anyio
@pytest.mark.parametrize(
    "how", ["amap-timeout", "gather-failure", "gather-refs-timeout", "gather-refs-failure"]
)
async def test_cancelled_call_does_not_wait_for_its_queued_work(how: str, tmp_path: Path) -> None:
    # Work that has not begun is cancelled: the cancelled call returns while every
    # worker is still busy with other work, and the dropped work never runs.
    ran = tmp_path / "ran"
    returned_while_held = False
    async with all_workers_held(tmp_path) as holders, anyio.create_task_group() as group:

        async def watchdog() -> None:
            # Only if the call below hangs: free the workers so that it can end.
            await anyio.sleep(3)
            (tmp_path / "release").touch()

        group.start_soon(watchdog)
        if how == "amap-timeout":
            with anyio.move_on_after(0.1) as scope:
                await aiopar.amap(workers.append_line, [str(ran)] * 3, chunksize=1)
            assert scope.cancelled_caught
        elif how == "gather-failure":
            queued = aiopar.submit(workers.append_line, str(ran))
            with pytest.raises(KeyError, match="boom"):
                await aiopar.gather(queued, boom())
        elif how == "gather-refs-timeout":  # TaskRefs only: gather's path without tasks
            refs = [aiopar.submit(workers.append_line, str(ran)) for _ in range(3)]
            with anyio.move_on_after(0.1) as scope:
                await aiopar.gather(*refs)
            assert scope.cancelled_caught
            assert all(ref.cancelled() for ref in refs)
        else:  # a ref that failed first: the others are cancelled
            refs = [aiopar.submit(workers.append_line, str(ran)) for _ in range(3)]
            cancelled = aiopar.submit(workers.append_line, str(ran))
            assert cancelled.cancel()
            with pytest.raises(cf.CancelledError):
                await aiopar.gather(*refs, cancelled)
            assert all(ref.cancelled() for ref in refs)
        returned_while_held = not any(holder.done() for holder in holders)
        group.cancel_scope.cancel()
    assert returned_while_held, "the cancelled call waited until a worker was free"
    # Anything still queued would start before this amap's chunks: it did not run.
    assert await aiopar.amap(workers.square, range(8), chunksize=1) == SQUARES[:8]
    assert not ran.exists()


@pytest.mark.anyio
async def test_taskref_cancel_of_a_task_that_has_not_started(tmp_path: Path) -> None:
    ran = tmp_path / "ran"
    async with all_workers_held(tmp_path):
        queued = aiopar.submit(workers.append_line, str(ran))
        await anyio.sleep(0.05)  # let the dispatcher take it; still behind the holders
        assert not queued.done()
        assert queued.cancel() is True
        assert queued.cancelled()
    assert await aiopar.amap(workers.square, range(8), chunksize=1) == SQUARES[:8]
    assert not ran.exists()


# ── one pool, several event loops ────────────────────────────────────────────────────


def test_one_pool_serves_an_asyncio_run_then_a_trio_run() -> None:
    pool = aiopar.Pool(workers=2)
    try:

        async def on_asyncio() -> tuple[list[int], aiopar.TaskRef[int], set[int]]:
            assert sniffio.current_async_library() == "asyncio"
            pool.open()  # opened here, in an asyncio run; closed at the end, in sync code
            squares = await pool.amap(workers.square, range(30))
            pids = set(await pool.amap(workers.pid, range(4), chunksize=1))
            ref = pool.submit(workers.square, 12)  # awaited in the next run
            return squares, ref, pids

        async def on_trio(ref: aiopar.TaskRef[int]) -> tuple[list[Any], set[int]]:
            assert sniffio.current_async_library() == "trio"
            got = [
                await pool.amap(workers.square, range(30)),
                await ref,
                await pool.submit(workers.add, ref, 1),
                await pool.tree_reduce(workers.add, range(10)),
                [y async for y in pool.imap(workers.double, range(5))],
            ]
            pids = set(await pool.amap(workers.pid, range(4), chunksize=1))
            return got, pids

        squares, ref, first_pids = anyio.run(on_asyncio, backend="asyncio")
        assert squares == SQUARES
        got, second_pids = anyio.run(on_trio, ref, backend="trio")
        assert got == [SQUARES, 144, 145, 45, [0, 2, 4, 6, 8]]
        # the same worker processes served both runs: nothing was restarted
        live = set(pool.worker_pids())
        assert first_pids <= live
        assert second_pids <= live
        assert not pool.closed
    finally:
        pool.close()
    assert pool.closed
    assert pool.worker_pids() == []
    with pytest.raises(RuntimeError, match="closed"):
        pool.submit(workers.square, 1)
