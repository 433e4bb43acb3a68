"""Plain data told in one pass of the C pickler (aiopar/_plain.py), and how the checks
of ``amap``'s items use it (aiopar/_checks.py): fast for builtin data, and every other
object still walked, so every refusal stays."""

from __future__ import annotations

import enum
import threading
from typing import Any

import anyio
import numpy as np
import pytest

import aiopar
from aiopar import _checks, _plain
from aiopar._checks import PLAIN_PIECE, PLAIN_PIECE_BYTES, check_items
from aiopar._plain import OverBudget, plain_pickles


class Color(enum.IntEnum):
    RED = 1


class Items(list[Any]):
    """A list subclass: not one of Python's own containers."""


def nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


def test_builtin_scalars_and_containers_are_plain_however_nested() -> None:
    cycle: list[Any] = [1]
    cycle.append(cycle)
    shared: list[Any] = [0]
    for _ in range(30):
        shared = [shared, shared]  # 2**30 paths, 31 lists
    values: list[Any] = [
        1, 2.5, 3j, True, None, "text", b"bytes", bytearray(b"ba"), range(5),
        [1, (2, "x")], {"a": {1: [2.0]}}, {1, 2}, frozenset({"f"}), cycle, shared,
    ]  # fmt: skip
    assert plain_pickles(values)
    assert all(plain_pickles(value) for value in values)
    # With a budget, first without the memo: the cycle and the 2**30 paths of `shared`
    # stop that pass (a cycle at once, sharing at the budget), and the memo's pass follows.
    assert all(plain_pickles(value, PLAIN_PIECE_BYTES) for value in values)


@pytest.mark.parametrize(
    "value",
    [
        threading.Lock(),
        [1, 2, (3, threading.Lock())],
        {"key": np.zeros(3)},  # passed over by type by the walk, not pickled here
        [Color.RED],  # an int subclass
        Items([1, 2]),
        [len],  # a function
        [object()],
        nested(100_000),  # deeper than the recursion limit: the walk is iterative
    ],
    ids=["lock", "lock-in-tuple", "array", "int-enum", "list-subclass", "function",
         "object", "deep"],
)  # fmt: skip
def test_anything_else_is_not_plain(value: object) -> None:
    assert not plain_pickles(value)
    assert not plain_pickles(value, PLAIN_PIECE_BYTES)


def test_with_a_budget_many_small_strings_are_pickled_once_without_the_memo(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The memo makes a pickle of 100,000 short strings or tuples ~5 times slower: the
    # budgeted check (that of amap's items, on the event loop) goes without it.
    passes: list[bool] = []
    dump = _plain._dump

    def spy(value: object, budget: int | None, *, fast: bool) -> None:
        passes.append(fast)
        dump(value, budget, fast=fast)

    monkeypatch.setattr(_plain, "_dump", spy)
    assert plain_pickles([str(i) for i in range(PLAIN_PIECE)], PLAIN_PIECE_BYTES)
    assert plain_pickles([(i, f"{i}") for i in range(PLAIN_PIECE)], PLAIN_PIECE_BYTES)
    assert passes == [True, True]
    shared = [list(range(1000))] * 1000  # ~3 MB without the memo, 3 kB with it
    assert plain_pickles(shared, PLAIN_PIECE_BYTES)
    assert passes[2:] == [True, False]


def test_the_byte_budget_stops_the_pickler() -> None:
    with pytest.raises(OverBudget):
        plain_pickles(list(range(1_000_000)), budget=1 << 16)
    assert plain_pickles(list(range(1000)), budget=1 << 16)


def test_a_long_list_of_tuples_is_checked_without_a_walk(monkeypatch: pytest.MonkeyPatch) -> None:
    items = [(i, str(i)) for i in range(3 * PLAIN_PIECE)]

    class NoWalk:
        def __init__(self, budget: int | None) -> None:
            raise AssertionError("plain items were walked object by object")

    monkeypatch.setattr(_checks, "_Walker", NoWalk)
    anyio.run(check_items, items, "amap(f)")


def test_over_the_budget_the_rest_is_checked_in_a_worker_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[int, int | None, bool]] = []  # items, budget, in the caller's thread
    caller = threading.get_ident()
    real = _plain.plain_pickles

    def spy(value: Any, budget: int | None = None) -> bool:
        calls.append((len(value), budget, threading.get_ident() == caller))
        return real(value, budget)

    monkeypatch.setattr(_checks, "plain_pickles", spy)
    big = list(range(PLAIN_PIECE_BYTES))  # one item pickles to more than the budget
    items: list[Any] = [1, 2, big, 3]
    anyio.run(check_items, items, "amap(f)")
    assert calls == [(4, PLAIN_PIECE_BYTES, True), (4, None, False)]
    calls.clear()
    anyio.run(check_items, list(range(2 * PLAIN_PIECE + 1)), "amap(f)")
    assert calls == [(PLAIN_PIECE, PLAIN_PIECE_BYTES, True)] * 2 + [(1, PLAIN_PIECE_BYTES, True)]


@pytest.mark.parametrize(
    ("items", "culprit"),
    [
        ([(i, "x") for i in range(5000)] + [(1, threading.Lock())], r"items\[5000\]\[1\]"),
        ([*range(3 * PLAIN_PIECE), threading.Lock()], rf"items\[{3 * PLAIN_PIECE}\]"),
        ([[1, 2], {"k": threading.Lock()}], r"items\[1\]\['k'\]"),
        ((1, threading.Lock()), r"items\[1\] of amap\(f\)"),
    ],
    ids=["tuples", "ints", "dict", "tuple-of-items"],
)
def test_what_is_not_plain_is_still_walked_and_refused_by_name(
    items: list[Any], culprit: str
) -> None:
    with pytest.raises(TypeError, match=culprit):
        anyio.run(check_items, items, "amap(f)")


@pytest.mark.asyncio
async def test_a_task_given_containers_of_builtin_data_is_sent_without_a_walk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The walks (argument check, search for TaskRefs inside containers) took ~7 ms of
    # the event loop for one submit of a 25,000-int list; one pass of the C pickler
    # tells builtin data in ~0.1 ms, and such data holds no TaskRef.
    from aiopar import _tasks
    from tests import workers

    def walked(*args: Any) -> Any:
        raise AssertionError("walked")

    rows = [{"id": i, "name": f"row {i}", "tags": ["a", "b"]} for i in range(2_000)]
    async with aiopar.Pool(1) as pool:
        monkeypatch.setattr(_tasks, "check_arguments", walked)
        monkeypatch.setattr(_tasks, "_find_refs", walked)
        assert await pool.submit(workers.identity, list(range(25_000))) == list(range(25_000))
        assert await pool.submit(workers.identity, rows) == rows
        with pytest.raises(AssertionError, match="walked"):  # not builtin data: walked
            pool.submit(workers.identity, [np.zeros(2)])
