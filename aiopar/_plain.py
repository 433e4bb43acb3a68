"""Plain values: data that pickles without running any code of the user's, told cheaply.

Used by the argument checks (``_checks.py``) to pass over what needs no walk:

* :func:`plain_value` / :func:`plain_arguments`: a task's arguments that are numbers,
  strings, bytes, None or short tuples of those (a test of types, for one call);
* :func:`plain_pickles`: a value made only of Python's own scalars and containers
  (int, float, complex, bool, str, bytes, bytearray, None, range; lists, tuples, dicts,
  sets, frozensets of them, nested in any way, shared or cyclic). It pickles the value
  into nothing with the C pickler, which handles these types itself and calls back only
  for any other object: the first such object stops it. So a list of 100,000 ints or
  of 100,000 tuples is checked in one C loop, about as fast as it will be pickled to
  send it, instead of object by object in Python. A byte budget bounds the work.

Runs in the calling thread (the event loop's, or a worker thread of the checks).
"""

from __future__ import annotations

import pickle
from typing import Any

__all__ = [
    "ARGUMENTS_BUDGET",
    "OverBudget",
    "plain_arguments",
    "plain_data_arguments",
    "plain_pickles",
    "plain_value",
]

PLAIN = frozenset({int, float, complex, bool, str, bytes, type(None)})
#: Bytes of pickle :func:`plain_data_arguments` makes at most (about 0.3 ms of C pickler)
#: before it leaves the arguments to the walk of ``_checks.py``.
ARGUMENTS_BUDGET = 1 << 20
# Scalars the C pickler hands to reducer_override, and reduces harmlessly after.
_REDUCED = (complex, range)


class OverBudget(Exception):
    """A check looked at its budget without finishing."""


class _NotPlain(Exception):
    """An object that is not one of Python's own scalars or containers."""


class _Discard:
    """A file that counts what is written to it and keeps nothing."""

    __slots__ = ("budget",)

    def __init__(self, budget: int | None) -> None:
        self.budget = budget

    def write(self, data: Any) -> int:
        size = memoryview(data).nbytes
        if self.budget is not None:
            self.budget -= size
            if self.budget < 0:
                raise OverBudget
        return size


class _PlainPickler(pickle.Pickler):
    """Pickles builtin scalars and containers; raises :class:`_NotPlain` at anything else.

    The C pickler saves None, bools, ints, floats, bytes, str, bytearrays and the exact
    builtin containers itself; every other object goes through ``reducer_override``.
    """

    def reducer_override(self, obj: Any) -> Any:
        if type(obj) in _REDUCED or (type(obj) is type and obj in _REDUCED):
            return NotImplemented  # reduced the usual way: into these types and floats
        raise _NotPlain


def plain_pickles(value: object, budget: int | None = None) -> bool:
    """Whether ``value`` is made only of builtin scalars and containers (see the module
    docstring); False also for nesting deeper than the interpreter's recursion limit.

    With a ``budget``, the value is first pickled without the pickler's memo (its
    ``fast`` mode): each string and tuple is written where it appears instead of being
    remembered, several times faster for many small ones (100,000 short strings: ~2 ms
    instead of ~10). An object shared many times is then written as many times, which
    the budget bounds; that, or a cycle (which stops fast mode at once), sends the value
    through the memo as well.

    Args:
        value: what to look at.
        budget: most bytes of pickle to make (None: no limit).

    Raises:
        OverBudget: the pickle grew past ``budget`` bytes before the end.
    """
    try:
        if budget is not None:
            try:
                _dump(value, budget, fast=True)
                return True
            except (OverBudget, ValueError):  # shared or cyclic objects: with the memo
                pass
        _dump(value, budget, fast=False)
    except OverBudget:
        raise
    except Exception:  # _NotPlain, RecursionError (deep nesting), MemoryError...
        return False
    return True


def _dump(value: object, budget: int | None, *, fast: bool) -> None:
    pickler = _PlainPickler(_Discard(budget), protocol=pickle.HIGHEST_PROTOCOL)
    pickler.fast = fast
    pickler.dump(value)


def plain_value(value: Any) -> bool:
    """Whether ``value`` is a number, a string, bytes, None, or a tuple of at most 8 of
    those: it pickles, and holds no TaskRef."""
    kind = type(value)
    if kind in PLAIN:
        return True
    return kind is tuple and len(value) <= 8 and all(type(v) in PLAIN for v in value)


def plain_arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Whether every argument is a plain value (see :func:`plain_value`): a call with
    them needs no walk (the common case of many small tasks)."""
    return all(map(plain_value, (*args, *kwargs.values()) if kwargs else args))


def plain_data_arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Whether the arguments of a call are builtin data, containers included (a list of
    numbers, a dict of strings): told by one pass of the C pickler (:func:`plain_pickles`),
    within :data:`ARGUMENTS_BUDGET`. Such arguments pickle, hold no TaskRef and no array:
    the call needs no walk, and they are sent as they are. False past the budget."""
    try:
        return plain_pickles((args, kwargs) if kwargs else args, ARGUMENTS_BUDGET)
    except OverBudget:
        return False
