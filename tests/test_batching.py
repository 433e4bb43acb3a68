"""Small jobs sent in batches (one executor work item for many jobs): the same results,
exceptions and order as one by one; a crash fails only the job that was running; a job
of a batch cancelled before it started never runs."""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures as cf
import os
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aiopar
from aiopar._dispatcher import Dispatcher
from tests import batch_workers, workers


@asynccontextmanager
async def pool_in_mode(mode: str, workers: int = 2) -> AsyncIterator[aiopar.Pool]:
    """A pool whose jobs go one by one (``"off"``), or in batches whenever several wait
    (``"always"``: the private switch that forces the batched path)."""
    async with aiopar.Pool(workers) as pool:
        dispatcher = pool._require_dispatcher()
        assert isinstance(dispatcher, Dispatcher)
        dispatcher._batch_mode = mode
        yield pool


def dispatcher_of(pool: aiopar.Pool) -> Dispatcher:
    dispatcher = pool._require_dispatcher()
    assert isinstance(dispatcher, Dispatcher)
    return dispatcher


def payloads_sent(dispatcher: Dispatcher) -> list[Any]:
    """The list to which the payload of every job ``dispatcher`` sends alone is added
    (what ``_worker.run_job`` receives: the arguments as they are, or an envelope)."""
    sent: list[Any] = []
    hand_over = dispatcher._hand_over

    def spy(fn: Any, *args: Any, jobs: Any) -> Any:
        sent.append(args[3])  # run_job(slot, func_blob, kind, payload, shm)
        return hand_over(fn, *args, jobs=jobs)

    dispatcher._hand_over = spy  # type: ignore[method-assign]
    return sent


def outcome(value: Any) -> Any:
    if isinstance(value, BaseException):
        return (type(value).__name__, str(value))
    return value


# Random task graphs: each node waits 0-2 ms, may fail, and depends on up to 3 earlier
# nodes (a failed dependency fails the node with the same exception). The first
# ROOTS nodes depend on nothing, so that some jobs wait together and form batches.
ROOTS = 8
graphs = st.integers(min_value=1, max_value=30).flatmap(
    lambda n: st.lists(
        st.tuples(
            st.sampled_from([0.0, 0.0, 0.0005, 0.002]),
            st.integers(0, 9).map(lambda k: k == 0),
            st.lists(st.integers(0, 1_000), max_size=3),
        ),
        min_size=n,
        max_size=n,
    )
)


def dependencies(graph: list[Any]) -> list[list[int]]:
    return [
        sorted({p % index for p in picks}) if index >= ROOTS else []
        for index, (_, _, picks) in enumerate(graph)
    ]


def expected(graph: list[Any]) -> list[set[Any]]:
    """What each node may give: its value, or its own error, or (when dependencies
    failed) the error of any one of them: whichever failed first, in either mode."""
    possible: list[set[Any]] = []
    for index, ((_, fails, _), deps) in enumerate(zip(graph, dependencies(graph), strict=True)):
        failed = [
            possible[d]
            for d in deps
            if any(isinstance(o, tuple) and o[0] == "ValueError" for o in possible[d])
        ]
        if failed:
            possible.append(set().union(*failed))
        elif fails:
            possible.append({("ValueError", f"node {index} fails")})
        else:
            total = sum(next(iter(possible[d]))[1] for d in deps)
            possible.append({(index, total % 1_000_003 + index)})
    return possible


async def run_graph(pool: aiopar.Pool, graph: list[Any]) -> list[Any]:
    refs: list[aiopar.TaskRef[Any]] = []
    for index, ((seconds, fails, _), deps) in enumerate(
        zip(graph, dependencies(graph), strict=True)
    ):
        dep_refs = [refs[d] for d in deps]
        refs.append(pool.submit(batch_workers.node, index, seconds, fails, *dep_refs))
    results = await aiopar.gather(*refs, return_exceptions=True)
    return [outcome(r) for r in results]


@pytest.mark.timeout(120)
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graph=graphs)
def test_batched_and_one_by_one_give_the_same_results_exceptions_and_order(
    graph: list[Any],
) -> None:
    async def both() -> tuple[list[Any], list[Any], int]:
        async with pool_in_mode("off") as pool:
            alone = await run_graph(pool, graph)
        async with pool_in_mode("always") as pool:
            batched = await run_graph(pool, graph)
            sent_in_batches = dispatcher_of(pool)._batched_jobs
        return alone, batched, sent_in_batches

    alone, batched, sent_in_batches = asyncio.run(both())
    possible = expected(graph)
    assert len(alone) == len(batched) == len(graph)
    for index, (one, other, allowed) in enumerate(zip(alone, batched, possible, strict=True)):
        assert one in allowed, (index, one, allowed)
        assert other in allowed, (index, other, allowed)
        if len(allowed) == 1:  # no two failed dependencies to race: the very same
            assert one == other
    if len(graph) >= ROOTS:  # the roots wait together: some share a work item
        assert sent_in_batches > 0


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_a_crash_in_a_batch_fails_only_the_task_that_was_running(tmp_path: Path) -> None:
    crash_at = 7
    async with pool_in_mode("always") as pool:
        # Submitted at once, they go in batches, one work item per worker at a time; the
        # first two take a while, so that the other worker's batch is under way too.
        refs = [
            pool.submit(batch_workers.counted, str(tmp_path), i, crash_at, 0.3 if i < 2 else 0.0)
            for i in range(16)
        ]
        results = await aiopar.gather(*refs, return_exceptions=True)
        assert dispatcher_of(pool)._batched_jobs >= 10
    for index, result in enumerate(results):
        if index == crash_at:
            assert isinstance(result, aiopar.WorkerCrashedError), result
        else:
            assert result == index * 10, (index, result)
    runs = [name.split("-")[0] for name in os.listdir(tmp_path)]
    assert runs.count(str(crash_at)) == 1  # failed, not run again
    for index in range(16):
        assert runs.count(str(index)) >= 1, index


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_a_task_cancelled_inside_a_batch_before_it_started_never_runs(
    tmp_path: Path,
) -> None:
    started, late, other = tmp_path / "started", tmp_path / "late", tmp_path / "other"
    async with pool_in_mode("always", workers=1) as pool:
        holding = tmp_path / "holding"
        holder = pool.submit(batch_workers.started_then_sleep, str(holding), 0.3)
        while not holding.exists():  # the holder runs alone: the one work item allowed
            await asyncio.sleep(0.01)
        # These wait behind the holder, then go in one batch.
        first = pool.submit(batch_workers.started_then_sleep, str(started), 0.5)
        victim = pool.submit(workers.append_line, str(late))
        after = pool.submit(workers.append_line, str(other))
        assert await holder == str(holding)
        while not started.exists():
            await asyncio.sleep(0.01)
        assert dispatcher_of(pool)._batched_jobs >= 3
        assert victim.cancel()
        assert await first == str(started)
        assert await after == str(other)
        with pytest.raises(cf.CancelledError):
            await victim
    assert not late.exists()
    assert other.read_text() == "ran\n"


# ── plain values: sent as they are, not wrapped for shared memory ────────────────────

PLAIN_RESULTS = [7, -2.5, 1 + 2j, True, None, b"\x00raw", "aiopar:skipped", (1, "a")]


@pytest.mark.parametrize("mode", ["off", "always"])
@pytest.mark.asyncio
async def test_plain_results_and_arguments_come_back_equal_and_of_their_type(mode: str) -> None:
    # Numbers, bytes and None travel as they are (no Result envelope); a str, even the
    # one that marks a skipped job, and a tuple still go wrapped: all come back alike.
    async with pool_in_mode(mode) as pool:
        got = await pool.gather(*[pool.submit(workers.identity, value) for value in PLAIN_RESULTS])
        chained = await pool.submit(workers.identity, pool.submit(workers.identity, 3))
    assert got == PLAIN_RESULTS
    assert [type(value) for value in got] == [type(value) for value in PLAIN_RESULTS]
    assert chained == 3


def test_a_worker_sends_plain_numbers_back_unwrapped_and_other_results_wrapped() -> None:
    from aiopar import _envelopes, _worker
    from aiopar._codepickle import pickle_function

    blob = pickle_function(workers.identity)
    for value in (5, 2.5, None, b"x", False):
        _, sent = _worker.run_job(-1, blob, _envelopes.CALL, ((value,), {}))
        assert type(sent) is type(value) and sent == value
    for value in ("aiopar:skipped", [1], (1, 2)):
        _, sent = _worker.run_job(-1, blob, _envelopes.CALL, ((value,), {}))
        assert isinstance(sent, _envelopes.Portable)
        assert _envelopes.unwrap(sent) == value


@pytest.mark.asyncio
async def test_a_task_of_plain_arguments_is_sent_without_an_outbound_envelope() -> None:
    import numpy as np

    from aiopar import _envelopes

    async with pool_in_mode("off") as pool:
        sent = payloads_sent(dispatcher_of(pool))
        assert await pool.submit(workers.add, 2, 3) == 5
        assert await pool.submit(workers.add, pool.submit(workers.add, 1, 1), 3) == 5
        assert await pool.submit(workers.total, [1, 2], {"three": (3,)}) == 6
        assert (await pool.submit(workers.identity, np.arange(3))).tolist() == [0, 1, 2]
        assert await pool.submit(workers.identity, [len]) == [len]
    assert sent[0] == ((2, 3), {})
    assert sent[1] == ((1, 1), {}) and sent[2] == ((2, 3), {})  # resolved: plain too
    assert sent[3] == (([1, 2], {"three": (3,)}), {})  # builtin containers: as they are
    assert isinstance(sent[4], _envelopes.Outbound)  # an array: to shared memory
    assert isinstance(sent[5], _envelopes.Outbound)  # a function: not builtin data


@pytest.mark.asyncio
async def test_map_chunks_of_plain_items_are_sent_as_they_are_others_in_an_envelope() -> None:
    import numpy as np

    from aiopar import _envelopes

    async with pool_in_mode("off") as pool:
        sent = payloads_sent(dispatcher_of(pool))
        plain = [1, "two", (3, [4.0]), {"five": None}]
        assert await pool.amap(workers.identity, plain, chunksize=2) == plain
        async for _ in pool.imap(workers.identity, iter(["a", "b"]), chunksize=2):
            pass
        assert len(sent) == 3
        arrays = [np.arange(3), np.arange(2)]
        got = await pool.amap(workers.identity, arrays, chunksize=2)
        assert [a.tolist() for a in got] == [[0, 1, 2], [0, 1]]
    assert sent[:3] == [plain[:2], plain[2:], ["a", "b"]]  # checked plain: no envelope
    assert isinstance(sent[3], _envelopes.Outbound)  # arrays: to shared memory


# ── settling: a batch's plain successes in one pass ──────────────────────────────────


class _CountingLock:
    """A lock that counts how often each thread takes it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.taken: collections.Counter[str] = collections.Counter()

    def __enter__(self) -> bool:
        self._lock.acquire()
        self.taken[threading.current_thread().name] += 1
        return True

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_a_batch_of_successes_takes_the_slot_lock_once_to_give_its_slots_back() -> None:
    async with pool_in_mode("always") as pool:
        await pool.gather(*[pool.submit(workers.double, i) for i in range(4)])  # workers up
        dispatcher = dispatcher_of(pool)
        counting = _CountingLock()
        dispatcher._slot_lock = counting  # type: ignore[assignment]
        batches: list[int] = []
        launch = dispatcher._launch_batch

        def counted(jobs: list[Any]) -> None:
            batches.append(len(jobs))
            launch(jobs)

        dispatcher._launch_batch = counted  # type: ignore[method-assign]
        before = dispatcher._batched_jobs
        got = await pool.gather(*[pool.submit(workers.double, i) for i in range(200)])
        assert got == [2 * i for i in range(200)]
        assert dispatcher._batched_jobs - before == sum(batches) > 0
        # The executor's manager thread settles the batches: a few times per batch at
        # most (and per job sent alone), not once or twice per job (400 before).
        alone = 200 - sum(batches)
        # The futures are set before the slots are given back: wait for the latter.
        for _ in range(500):
            if not dispatcher._inflight:
                break
            await asyncio.sleep(0.01)
        settling = sum(n for name, n in counting.taken.items() if name != "aiopar-dispatch")
        assert settling <= 2 * (len(batches) + alone), (counting.taken, batches)
        assert not dispatcher._inflight
        assert sorted(dispatcher._free_slots) == list(range(len(dispatcher._slots)))


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_small_tasks_wait_to_leave_in_a_batch_while_the_workers_have_enough(
    tmp_path: Path,
) -> None:
    # A task graph's dependents become ready one at a time: each used to take a work
    # item of its own while the executor had room (32 per worker). Now a small task
    # (its function measured short) waits with us once the executor holds 2 items per
    # worker, still cancellable for free, and leaves in a batch when an item comes back.
    gate = tmp_path / "gate"
    async with aiopar.Pool(2) as pool:
        dispatcher = dispatcher_of(pool)
        assert dispatcher._batch_mode == "auto"
        assert await pool.submit(workers.double, 1) == 2  # double: measured, small
        holders = [pool.submit(batch_workers.wait_for, str(gate)) for _ in range(4)]
        while len(dispatcher._items) < 4:  # never measured: each goes alone
            await asyncio.sleep(0.005)
        before = dispatcher._batched_jobs
        small = [pool.submit(workers.double, i) for i in range(10)]
        while len(dispatcher._pending) + sum(r.future.running() for r in small) < len(small):
            await asyncio.sleep(0.005)  # until the dispatcher thread has taken them all
        assert not any(ref.future.running() or ref.done() for ref in small)
        assert len(dispatcher._items) == 4
        assert small[3].cancel()  # still ours: never sent
        gate.touch()
        assert await pool.gather(*holders) == [str(gate)] * 4
        assert [await ref for i, ref in enumerate(small) if i != 3] == [
            2 * i for i in range(10) if i != 3
        ]
        # in batches, but for the last ones (no more waiting than workers: alone)
        assert dispatcher._batched_jobs - before >= 9 - 2
