"""Pool lifecycle and options; the default pool; foreign executors."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import multiprocessing
import os
import sys

import anyio
import pytest

import aiopar
import aiopar._default
from tests import workers


@pytest.mark.asyncio
async def test_pool_runs_work_in_other_processes_and_stops_them() -> None:
    async with aiopar.Pool(workers=2) as pool:
        pids = set(await pool.amap(workers.slow_pid, range(4), chunksize=1))
        live = pool.worker_pids()
    assert os.getpid() not in pids
    assert pids <= set(live)
    assert len(pids) == 2
    assert pool.closed
    for pid in live:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


@pytest.mark.asyncio
async def test_closed_or_unopened_pool_says_how_to_use_it() -> None:
    pool = aiopar.Pool(workers=1)
    with pytest.raises(RuntimeError, match=r"async with aiopar\.Pool"):
        await pool.amap(workers.square, [1])
    async with pool:
        assert await pool.amap(workers.square, [3]) == [9]
    with pytest.raises(RuntimeError, match="closed"):
        await pool.amap(workers.square, [1])
    with pytest.raises(RuntimeError, match="closed"):
        pool.submit(workers.square, 1)


@pytest.mark.parametrize(
    ("kwargs", "error", "names"),
    [
        ({"workers": 0}, ValueError, "workers"),
        ({"workers": -1}, ValueError, "workers"),
        ({"workers": 1.5}, TypeError, "workers"),
        ({"workers": True}, TypeError, "workers"),
        ({"max_tasks_per_child": 0}, ValueError, "max_tasks_per_child"),
        ({"cancel": "maybe"}, ValueError, "cancel"),
        ({"start_method": "fork"}, ValueError, "forkserver"),
        ({"start_method": "teleport"}, ValueError, "start_method"),
        ({"initializer": 42}, TypeError, "initializer"),
        ({"initargs": [1]}, TypeError, "initargs"),
        ({"executor": object()}, TypeError, "executor"),
        ({"retries": -1}, ValueError, "retries"),
    ],
)
def test_bad_options_are_refused_naming_the_option(
    kwargs: dict[str, object], error: type[Exception], names: str
) -> None:
    with pytest.raises(error, match=names):
        aiopar.Pool(**kwargs)  # type: ignore[arg-type]


def test_kill_mode_and_process_options_need_our_own_processes() -> None:
    with cf.ThreadPoolExecutor(1) as executor:
        with pytest.raises(ValueError, match="kill"):
            aiopar.Pool(executor=executor, cancel="kill")
        with pytest.raises(ValueError, match="initializer"):
            aiopar.Pool(executor=executor, initializer=workers.make_state)


@pytest.mark.asyncio
async def test_initializer_state_is_reachable_from_tasks() -> None:
    async with aiopar.Pool(workers=2, initializer=workers.make_state, initargs=("model",)) as pool:
        pairs = await pool.amap(workers.pid_and_state, range(6), chunksize=1)
        live = set(pool.worker_pids())
    # each task sees the state its own worker's initializer made: "model-<that pid>"
    assert all(state == f"model-{pid}" for pid, state in pairs)
    assert {pid for pid, _ in pairs} <= live


@pytest.mark.asyncio
async def test_worker_state_without_initializer_is_none_and_fails_outside_workers() -> None:
    async with aiopar.Pool(workers=1) as pool:
        assert await pool.amap(workers.get_state, [0]) == [None]
    with pytest.raises(RuntimeError, match="outside a worker"):
        aiopar.worker_state()


@pytest.mark.asyncio
async def test_failing_initializer_is_reported_to_every_task() -> None:
    async with aiopar.Pool(workers=1, initializer=workers.failing_initializer) as pool:
        with pytest.raises(RuntimeError, match="initializer failed") as info:
            await pool.submit(workers.square, 2)
    assert "model file missing" in repr(info.value.__cause__)


@pytest.mark.asyncio
async def test_max_tasks_per_child_replaces_workers() -> None:
    async with aiopar.Pool(workers=1, max_tasks_per_child=2) as pool:
        pids = [await pool.submit(workers.pid) for _ in range(6)]
    assert len(set(pids)) == 3


@pytest.mark.asyncio
async def test_spawn_start_method_works() -> None:
    async with aiopar.Pool(workers=1, start_method="spawn") as pool:
        assert await pool.amap(workers.square, range(5)) == [0, 1, 4, 9, 16]
        assert await pool.submit(workers.add, pool.submit(workers.square, 3), 1) == 10


@pytest.mark.asyncio
async def test_foreign_executor_is_used_and_not_shut_down() -> None:
    with cf.ThreadPoolExecutor(2) as executor:
        async with aiopar.Pool(workers=2, executor=executor) as pool:
            assert await pool.amap(workers.square, range(10)) == [x * x for x in range(10)]
            assert await pool.submit(workers.pid) == os.getpid()  # threads: same process
        assert executor.submit(workers.square, 4).result() == 16  # still usable


@pytest.mark.asyncio
async def test_foreign_process_executor_runs_lambdas() -> None:
    with cf.ProcessPoolExecutor(1) as executor:
        async with aiopar.Pool(workers=1, executor=executor) as pool:
            assert await pool.amap(lambda x: x + 1, [1, 2]) == [2, 3]


def test_default_pool_is_reused_across_event_loops_and_backends() -> None:
    async def worker_pids() -> set[int]:
        return set(await aiopar.amap(workers.slow_pid, range(4), chunksize=1))

    first = anyio.run(worker_pids)
    second = anyio.run(worker_pids, backend="trio")
    third = asyncio.run(worker_pids())
    pool = aiopar.get_default_pool()
    assert first | second | third <= set(pool.worker_pids())
    assert pool is aiopar.get_default_pool()


@pytest.mark.asyncio
async def test_shutdown_closes_default_pool_and_next_call_makes_a_new_one() -> None:
    old = aiopar.get_default_pool()
    assert await aiopar.amap(workers.square, [2]) == [4]
    old_pids = old.worker_pids()
    await aiopar.shutdown()
    assert old.closed
    assert aiopar._default._pool is None
    for pid in old_pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert await aiopar.amap(workers.square, [3]) == [9]
    assert aiopar.get_default_pool() is not old


@pytest.mark.asyncio
async def test_pool_argument_of_module_functions_is_checked() -> None:
    with pytest.raises(TypeError, match="pool"):
        await aiopar.amap(workers.square, [1], pool="mine")  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_a_foreign_executor_refusing_work_fails_that_call() -> None:
    executor = cf.ThreadPoolExecutor(1)
    async with aiopar.Pool(workers=1, executor=executor) as pool:
        executor.shutdown()
        with pytest.raises(RuntimeError, match="shutdown"):
            await pool.submit(workers.square, 2)
        with pytest.raises(RuntimeError, match="shutdown"):
            await pool.amap(workers.square, [1, 2])


@pytest.mark.asyncio
async def test_a_broken_foreign_process_pool_fails_queued_calls_without_a_hang() -> None:
    from concurrent.futures.process import BrokenProcessPool

    with cf.ProcessPoolExecutor(1) as executor:
        async with aiopar.Pool(workers=1, executor=executor) as pool:
            # the first job breaks the executor; the others wait with aiopar and are
            # handed over only when earlier jobs finish, to a broken executor
            refs = [pool.submit(workers.die), *(pool.submit(workers.square, i) for i in range(4))]
            with anyio.fail_after(60):
                results = await aiopar.gather(*refs, return_exceptions=True)
    assert all(isinstance(r, BrokenProcessPool) for r in results), results


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc and /proc only")
@pytest.mark.asyncio
async def test_workers_keep_freed_blocks_for_the_next_call() -> None:
    # numpy temporaries of a 16 MiB piece: kept by an aiopar worker, given back to the
    # system (and fresh pages next time) by a plain executor's worker.
    size = 16 << 20
    async with aiopar.Pool(workers=1) as pool:
        kept = await pool.submit(workers.rss_kept_after_free, size)
    assert kept >= size * 0.9
    with cf.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("forkserver")) as plain:
        assert plain.submit(workers.rss_kept_after_free, size).result() < size * 0.1


@pytest.mark.asyncio
async def test_successes_are_delivered_without_waking_the_dispatcher_thread() -> None:
    # A plain result is settled in the executor's own thread; only failures (and the
    # like) go through the dispatcher thread as "done" events.
    async with aiopar.Pool(workers=2) as pool:
        dispatcher = pool._require_dispatcher()
        seen: list[str] = []
        queue = dispatcher._events

        class Recording:
            def put(self, event: tuple[object, ...]) -> None:
                seen.append(str(event[0]))
                queue.put(event)

            def __getattr__(self, name: str) -> object:
                return getattr(queue, name)

        dispatcher._events = Recording()  # type: ignore[assignment]
        try:
            assert await pool.gather(*(pool.submit(workers.square, i) for i in range(20))) == [
                i * i for i in range(20)
            ]
            with pytest.raises(ValueError):
                await pool.submit(workers.fail, 1)
        finally:
            dispatcher._events = queue
    # Submitted jobs reach the dispatcher thread through its inbox: one wake-up per
    # burst of submits, at most one per job.
    assert 1 <= seen.count("inbox") <= 21, seen
    assert seen.count("done") == 1, seen


@pytest.mark.asyncio
@pytest.mark.parametrize("start_method", ["forkserver", "spawn"])
async def test_more_tasks_than_the_executor_takes_at_once_all_run(start_method: str) -> None:
    # 32 jobs per worker go to the executor; the rest wait with the pool and are sent
    # as the first ones finish, each result settled outside the dispatcher thread.
    async with aiopar.Pool(workers=1, start_method=start_method) as pool:
        refs = [pool.submit(workers.square, i) for i in range(150)]
        assert await pool.gather(*refs) == [i * i for i in range(150)]


@pytest.mark.timeout(60)
def test_submits_from_many_threads_at_once_each_run_once() -> None:
    # Submitters append to the dispatcher's inbox without a lock, while the dispatcher
    # thread empties it and the settling threads send dependents into it too: no job
    # may be lost (its result would never come: a hang) or run twice.
    threads, per_thread = 8, 300
    pool = aiopar.Pool(workers=2)
    pool.open()
    try:

        def submit_many(base: int) -> list[aiopar.TaskRef[int]]:
            refs = []
            for i in range(per_thread):
                ref = pool.submit(workers.double, base + i)
                # every other one depends on the previous: sent by a settling thread
                refs.append(pool.submit(workers.add, ref, 1) if i % 2 else ref)
            return refs

        with cf.ThreadPoolExecutor(threads) as submitters:
            starts = range(0, threads * per_thread, per_thread)
            batches = list(submitters.map(submit_many, starts))
        got = [ref.future.result(timeout=30) for refs in batches for ref in refs]
    finally:
        pool.close()
    expected = [2 * x + (1 if x % 2 else 0) for x in range(threads * per_thread)]
    assert got == expected
