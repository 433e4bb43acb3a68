"""The up-front checks of functions and arguments, and their bounds on hostile shapes."""

from __future__ import annotations

import collections
import dataclasses
import functools
import io
import itertools
import re
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest

import aiopar
from aiopar._checks import (
    INLINE_ITEMS,
    LOOP_BUDGET,
    check_arguments,
    check_function,
    check_items,
    first_unpicklable,
    is_coroutine_function,
)
from aiopar._chunks import split
from tests.workers import add, double, first_two_are_one, identity, lengths, square


def test_known_types_pass_and_the_culprit_is_found() -> None:
    lock = threading.Lock()
    assert first_unpicklable([1, "a", b"b", 2.5, None, np.ones(3), {"k": [1, (2, 3)]}]) is None
    assert first_unpicklable([1, 2, lock, 4]) == 2
    assert first_unpicklable([[1], {"deep": [{"x": lock}]}]) == 1
    assert first_unpicklable([np.array([lock], dtype=object)]) == 0
    assert first_unpicklable([lambda x: x]) is None  # cloudpickle sends it


def test_taskrefs_and_awaitables_are_passed_over_at_any_depth() -> None:
    ref = aiopar.submit(abs, -1)
    try:
        assert first_unpicklable([ref, [ref], {"r": (ref,)}]) is None
        check_arguments((ref, [ref]), {"k": {"r": ref}}, "task t")
    finally:
        assert ref.future.result(timeout=30) == 1


def test_messages_name_the_argument() -> None:
    lock = threading.Lock()
    with pytest.raises(TypeError, match=r"positional argument 1 of task t .*lock"):
        check_arguments((1, lock), {}, "task t")
    with pytest.raises(TypeError, match=r"keyword argument 'guard' of task t"):
        check_arguments((), {"guard": lock}, "task t")


def test_long_sequences_are_checked_off_the_loop() -> None:
    lock = threading.Lock()
    items: list[object] = [*range(INLINE_ITEMS * 2), lock]

    async def main() -> None:
        with pytest.raises(TypeError, match=rf"items\[{INLINE_ITEMS * 2}\] of amap\(f\)"):
            await check_items(items, "amap(f)")
        await check_items(range(10**9), "amap(f)")  # a range holds ints: nothing to look at

    anyio.run(main)


@dataclasses.dataclass
class Holder:
    data: object
    note: str = "x"


def test_a_dataclass_is_checked_through_its_attributes_not_pickled_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from aiopar import _checks

    pickled: list[object] = []
    real = _checks._pickles

    def recording(value: object) -> bool:
        pickled.append(value)
        return real(value)

    monkeypatch.setattr(_checks, "_pickles", recording)
    big = Holder(np.ones(2_000_000))
    assert first_unpicklable([big, Holder(np.zeros(3))]) is None
    assert pickled == [Holder]  # the class, once; never an instance with its array
    assert first_unpicklable([Holder({"deep": [threading.Lock()]})]) == 0


# ── kinds of functions that cannot run in a worker (issue 10) ──────────────────────────


async def coroutine_function(x: int) -> int:
    return x


async def async_generator_function(x: int) -> Any:
    yield x


def generator_function(x: int) -> Any:
    yield x


class AsyncCallable:
    async def __call__(self, x: int) -> int:
        return x


REFUSED_FUNCTIONS = [
    pytest.param(async_generator_function, "async generator function", id="async-generator"),
    pytest.param(
        functools.partial(async_generator_function), "async generator", id="async-gen-partial"
    ),
    pytest.param(generator_function, "return a list", id="generator"),
]


@pytest.mark.parametrize(
    "func",
    [coroutine_function, functools.partial(coroutine_function), AsyncCallable()],
    ids=["async-def", "partial", "async-call"],
)
def test_coroutine_functions_are_accepted_and_recognized(func: Any) -> None:
    check_function(func)
    assert is_coroutine_function(func)
    assert not is_coroutine_function(generator_function)
    assert not is_coroutine_function(functools.partial(len))


@pytest.mark.parametrize(("func", "message"), REFUSED_FUNCTIONS)
@pytest.mark.asyncio
async def test_async_and_generator_functions_are_refused_before_any_work(
    func: Any, message: str
) -> None:
    async with aiopar.Pool(workers=1) as pool:
        calls: list[Callable[[], Awaitable[Any]]] = [
            lambda: pool.amap(func, [1, 2]),
            lambda: anext(pool.imap(func, [1, 2])),
            lambda: pool.amap_chunks(func, [1, 2]),
            lambda: pool.tree_reduce(func, [1, 2]),
            lambda: pool.submit(func, 1),  # type: ignore[arg-type,return-value]
            lambda: aiopar.remote(func, pool=pool).remote(1),  # type: ignore[return-value]
        ]
        for call in calls:
            with pytest.raises(TypeError, match=message):
                await call()
        assert pool.worker_pids() == []  # refused before any worker started
    if "async" not in message:  # an async generator initializer yields the state
        with pytest.raises(TypeError, match=rf"initializer=.*{message}"):
            aiopar.Pool(workers=1, initializer=func)


# ── arguments: open files, and the path to what cannot be pickled ──────────────────────


@dataclasses.dataclass
class Job:
    name: str
    lock: object


def test_open_files_are_refused_wherever_they_are(tmp_path: Path) -> None:
    path = tmp_path / "data.txt"
    path.write_text("hello")
    with path.open() as file:
        with pytest.raises(TypeError, match=r"positional argument 0 of task t is an open file"):
            check_arguments((file,), {}, "task t")
        with pytest.raises(TypeError, match=r"args\[1\]\['f'\] is an open file .*data\.txt.*path"):
            check_arguments((1, {"f": file}), {}, "task t")
        with pytest.raises(TypeError, match=r"kwargs\['job'\]\.lock is an open file"):
            check_arguments((), {"job": Job("a", file)}, "task t")

        async def main() -> None:
            with pytest.raises(TypeError, match=r"items\[2\]\[0\] is an open file"):
                await check_items([1, 2, [file]], "amap(f)")

        anyio.run(main)
    check_arguments((io.BytesIO(b"x"), io.StringIO("y")), {}, "task t")  # in-memory: data


def test_the_message_names_the_attribute_or_item_that_cannot_be_pickled() -> None:
    with pytest.raises(
        TypeError, match=r"positional argument 0 of task t \(a Job\) .*: args\[0\]\.lock \(a lock\)"
    ):
        check_arguments((Job("a", threading.Lock()),), {}, "task t")
    items: list[object] = [1, 2, 3, {"name": "x", "conn": socket.socket()}]
    try:

        async def main() -> None:
            with pytest.raises(TypeError, match=r"items\[3\]\['conn'\] \(a socket\)"):
                await check_items(items, "amap(f)")
            with pytest.raises(TypeError, match=r"items\[13\]\['conn'\]"):
                await check_items(items, "imap(f)", start=10)

        anyio.run(main)
    finally:
        items[3]["conn"].close()  # type: ignore[index]


# ── integer-likes, workers, data of amap_chunks (issue 10) ────────────────────────────


@pytest.mark.asyncio
async def test_integer_likes_are_accepted_wherever_a_count_is_taken() -> None:
    one: Any = np.int64(1)
    two: Any = np.uint8(2)
    three: Any = np.int64(3)
    four: Any = np.int16(4)
    async with aiopar.Pool(workers=one, max_tasks_per_child=np.int32(50), retries=one) as pool:  # type: ignore[arg-type]
        assert pool.workers == 1 and type(pool.workers) is int
        assert await pool.amap(square, range(7), chunksize=three) == [x * x for x in range(7)]
        imap = pool.imap(square, range(5), chunksize=three, max_inflight=two)
        assert [x async for x in imap] == [x * x for x in range(5)]
        pieces = await pool.amap_chunks(identity, list(range(6)), chunks=four, combine=None)
        assert pieces == [[0, 1], [2, 3], [4], [5]]
        doubled = await pool.amap_chunks(double, np.arange(7), chunksize=three)
        assert doubled.tolist() == [x * 2 for x in range(7)]
        assert await pool.tree_reduce(add, range(10), chunksize=three) == 45
        for bad in (True, 2.0, "3"):
            with pytest.raises(TypeError, match="chunksize must be a positive int"):
                await pool.amap(square, [1], chunksize=bad)
    with pytest.raises(TypeError, match="retries must be an int >= 0, got True"):
        aiopar.Pool(retries=True)
    with pytest.raises(TypeError, match="workers must be a positive int"):
        aiopar.Pool(workers=2.0)  # type: ignore[arg-type]


def test_a_huge_number_of_workers_is_refused_naming_workers() -> None:
    with pytest.raises(ValueError, match=r"workers=1000000000000 .*1024.*CPUs"):
        aiopar.Pool(workers=10**12)
    assert aiopar.Pool(workers=1024).workers == 1024  # the ceiling itself is allowed


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ({"a": 1, "b": 2}, "items()"),
        ({1, 2, 3}, "amap() or imap()"),
        ((x for x in range(3)), "amap()"),
        (collections.Counter("abc"), "items()"),
    ],
    ids=["dict", "set", "generator", "counter"],
)
def test_amap_chunks_refuses_data_it_cannot_slice_naming_data(data: object, says: str) -> None:
    with pytest.raises(TypeError, match=rf"sequence as data, got .*{re.escape(says)}"):
        split(data, chunks=None, chunksize=None, workers=2)


@pytest.mark.asyncio
async def test_amap_chunks_over_a_dict_fails_before_any_work() -> None:
    async with aiopar.Pool(workers=1) as pool:
        with pytest.raises(TypeError, match=r"amap_chunks\(\) needs .* as data, got dict"):
            await pool.amap_chunks(double, {"a": 1})
        assert pool.worker_pids() == []


# ── hostile shapes: shared parts and cycles (issue 11, item 1) ─────────────────────────


def shared(levels: int = 21, leaf: object = 0) -> list[Any]:
    """[a, a] nested ``levels`` deep: a few bytes pickled, 2**levels paths."""
    a: list[Any] = [leaf]
    for _ in range(levels):
        a = [a, a]
    return a


def cyclic(leaf: object | None = None) -> list[Any]:
    """A list that holds itself twice (and ``leaf``, if given)."""
    cycle: list[Any] = [] if leaf is None else [leaf]
    cycle.append(cycle)
    cycle.append(cycle)
    return cycle


async def max_loop_gap(call: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    """Run ``call`` while a task ticks every 1 ms; return the longest gap between ticks
    seen while the call ran (the event loop's longest stall), and the call's result."""
    ticks: list[float] = []
    result: Any = None

    async def ticker() -> None:
        while True:
            ticks.append(time.perf_counter())
            await anyio.sleep(0.001)

    async with anyio.create_task_group() as group:
        group.start_soon(ticker)
        await anyio.sleep(0.01)  # the ticker is running
        start = time.perf_counter()
        result = await call()
        end = time.perf_counter()
        await anyio.sleep(0.005)  # a tick after the call ends
        group.cancel_scope.cancel()
    during = [start, *(t for t in ticks if start < t < end), end]
    return max(b - a for a, b in itertools.pairwise(during)), result


async def assert_loop_kept_ticking(call: Callable[[], Awaitable[Any]]) -> Any:
    """The loop never stalled more than 50 ms during ``call``; a noisy machine gets
    three tries (a check that walks the graph stalls every try, for seconds)."""
    gaps = []
    for _ in range(3):
        gap, result = await max_loop_gap(call)
        if gap < 0.05:
            return result
        gaps.append(gap)
    pytest.fail(f"the event loop stalled {max(gaps) * 1000:.0f} ms (tries: {gaps})")


@pytest.mark.anyio
@pytest.mark.timeout(60)
async def test_shared_and_cyclic_arguments_go_through_without_stalling_the_loop() -> None:
    deep, cycle = shared(), cyclic()  # both pickle to a few bytes

    async def through_submit() -> Any:
        return await aiopar.gather(aiopar.submit(identity, deep), aiopar.submit(identity, cycle))

    same_deep, same_cycle = await assert_loop_kept_ticking(through_submit)
    assert same_deep == deep
    assert len(same_cycle) == 2 and same_cycle[0] is same_cycle and same_cycle[1] is same_cycle

    async def through_amap() -> Any:
        return await aiopar.amap(len, [deep, cycle, [deep, cycle] * 50])

    assert await assert_loop_kept_ticking(through_amap) == [2, 2, 100]

    async def through_tree_reduce() -> Any:
        return await aiopar.tree_reduce(lengths, [deep, cycle], chunksize=2)

    assert await assert_loop_kept_ticking(through_tree_reduce) == 4


class CountingList(list[Any]):
    """A list that counts the items taken from it in one thread."""

    def __init__(self, items: Any, thread: int) -> None:
        super().__init__(items)
        self.thread = thread
        self.taken = 0

    def __iter__(self) -> Any:
        for item in super().__iter__():
            if threading.get_ident() == self.thread:
                self.taken += 1
            yield item


@pytest.mark.anyio
@pytest.mark.timeout(60)
async def test_a_wide_argument_is_looked_at_within_the_budget_on_the_loop() -> None:
    # Timing a wide argument end to end would measure its pickling in the executor's
    # threads (which holds the GIL), not the check: count what the loop's thread reads.
    loop_thread = threading.get_ident()
    wide = CountingList(range(1_000_000), loop_thread)
    assert await aiopar.submit(len, wide) == len(wide)
    assert wide.taken <= 2 * LOOP_BUDGET + 2  # the check, then the search for TaskRefs
    wide.taken = 0
    assert await aiopar.amap(len, [wide, [1]]) == [len(wide), 1]
    assert wide.taken <= LOOP_BUDGET + 1  # the rest was looked at in a worker thread


@pytest.mark.anyio
@pytest.mark.timeout(60)
async def test_taskrefs_in_shared_parts_are_resolved_once_and_cycles_are_refused() -> None:
    ref = aiopar.submit(identity, 7)
    inner = [ref]

    async def shared_parts() -> Any:
        deep = shared(leaf=ref)
        return await aiopar.gather(
            aiopar.submit(first_two_are_one, [inner, inner]),
            aiopar.submit(first_two_are_one, deep),
            aiopar.submit(identity, deep),
        )

    one, one_deep, got = await assert_loop_kept_ticking(shared_parts)
    assert one and one_deep  # the shared part is rebuilt once, so it arrives as one
    assert got == shared(leaf=7)
    with pytest.raises(TypeError, match="contains itself"):
        aiopar.submit(identity, cyclic(leaf=ref))
    assert await ref == 7


@pytest.mark.anyio
@pytest.mark.timeout(60)
async def test_past_the_budget_a_bad_argument_still_fails_its_call_alone() -> None:
    ref = aiopar.submit(identity, 1)
    await ref
    wide_with_lock: list[object] = [*range(LOOP_BUDGET * 2), threading.Lock()]
    bad = aiopar.submit(identity, wide_with_lock)  # not refused here: beyond the budget
    good = aiopar.submit(identity, 5)
    late_ref = aiopar.submit(identity, [*range(LOOP_BUDGET * 2), ref])
    with pytest.raises(TypeError, match=r"positional argument 0 of task identity#\d+"):
        await bad
    with pytest.raises(TypeError, match="TaskRef"):
        await late_ref
    assert await good == 5
