"""Pickling a call's function: once per function that goes by name, at each call for
those that go by value; plain arguments need no walk."""

from __future__ import annotations

import pickle
from typing import Any

from aiopar._checks import plain_arguments
from aiopar._codepickle import pickle_function
from tests import workers

scale = [2]


def test_a_function_found_by_name_is_pickled_once_one_by_value_at_each_call() -> None:
    first = pickle_function(workers.double)
    assert pickle_function(workers.double) is first  # kept, not made again
    assert pickle.loads(first) is workers.double

    def closure(x: int) -> int:  # pickled by value, with what it refers to
        return x * scale[0]

    lam: Any = lambda x: x + scale[0]  # noqa: E731
    for func in (closure, lam):
        scale[0] = 2
        before = pickle_function(func)
        scale[0] = 5
        after = pickle_function(func)
        assert after is not before
        assert pickle.loads(before)(1) != pickle.loads(after)(1)  # the new value went along
    scale[0] = 2


def test_plain_arguments_are_recognised_without_a_walk() -> None:
    assert plain_arguments((1, 2.5, "a", b"b", None, True, 1j), {})
    assert plain_arguments((1, (2, "x")), {"n": 3})
    assert not plain_arguments(([1, 2],), {})  # a list may hold anything
    assert not plain_arguments((1,), {"key": {1: 2}})
    assert not plain_arguments(((1, [2]),), {})
    assert not plain_arguments((tuple(range(9)),), {})  # long tuples are walked
    assert not plain_arguments((workers.double,), {})
