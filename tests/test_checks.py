"""The up-front picklability check (no processes needed)."""

from __future__ import annotations

import dataclasses
import threading

import anyio
import numpy as np
import pytest

import aiopar
from aiopar._checks import INLINE_ITEMS, check_arguments, check_items, first_unpicklable


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
