"""Refusing functions and arguments that cannot work in a worker, before any work starts.

Functions: :func:`check_function` and :func:`is_coroutine_function` (see
``_function_check.py``), used by every call through ``pickle_function``.

Arguments are pickled only when a job is sent (in the executor's feeder thread, off the
event loop), which is too late to refuse a bad call as a whole: its first jobs may
already have run. So calls look at their arguments first, cheaply:

* a list or tuple of items made only of Python's own scalars and containers (ints,
  strings, tuples of them...) is passed over after one pass of the C pickler into
  nothing (``_plain.plain_pickles``), which stops at the first object of another type;
  then, or for anything else:
* values of types that always pickle (numbers, strings, bytes, numpy arrays without
  object dtype, pandas objects) are passed over by type, whatever their size;
* lists, tuples, sets and dicts are walked;
* an object that pickles as "its class + its ``__dict__``" (a dataclass, a plain
  class) is looked at through its class and its attributes, walked by these rules;
* an open file (an :class:`io.IOBase` other than an in-memory buffer or the standard
  streams) is refused: cloudpickle would send a snapshot of a file opened for reading,
  not the file; the message says to pass the path and open it in the worker;
* any other object is pickled once *per type* (the first instance of each type stands
  for the others), plainly and then with cloudpickle.

The message names the path to the culprit: ``items[3]['conn']``, ``args[0].lock``.

Bounded work whatever the shape of the argument. The walk is iterative and visits each
object once, by identity (``[a, a]`` nested 21 deep is 22 lists, a list that holds
itself is one), keeping what it visited alive while it runs. On the caller's thread
(often the event-loop thread) it looks at no more than :data:`LOOP_BUDGET` objects:

* :func:`check_items` (async: maps and ``tree_reduce``) then starts over in a worker
  thread with no limit, as it does at once for a sequence of more than
  :data:`INLINE_ITEMS` items; the time there is that of one pass over the objects;
* :func:`check_arguments` (sync: ``submit`` may be called from sync code) stops looking:
  an argument it did not reach that cannot be pickled fails when the job is pickled in
  the executor's feeder thread, which fails that call alone, with a TypeError naming
  the argument (see ``Outbound`` in ``_worker.py``).
"""

from __future__ import annotations

import io
import itertools
import pickle
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import anyio

from ._function_check import check_function, is_coroutine_function
from ._plain import PLAIN, OverBudget, plain_arguments, plain_pickles, plain_value

__all__ = [
    "INLINE_ITEMS",
    "LOOP_BUDGET",
    "PLAIN_PIECE",
    "PLAIN_PIECE_BYTES",
    "check_arguments",
    "check_function",
    "check_items",
    "first_unpicklable",
    "is_coroutine_function",
    "plain_arguments",
    "plain_value",
]

INLINE_ITEMS = 2_000
#: Most objects one check looks at on the caller's thread (a few milliseconds of work).
LOOP_BUDGET = 10_000
#: A list or tuple of items is first tested for plain data (``_plain.plain_pickles``) on
#: the caller's thread in pieces of this many items, yielding to the event loop between
#: pieces, each piece making at most :data:`PLAIN_PIECE_BYTES` of pickle (about 0.3 ms).
PLAIN_PIECE = 16_384
#: See :data:`PLAIN_PIECE`; past it the rest is tested in a worker thread.
PLAIN_PIECE_BYTES = 1 << 20
_ALWAYS = frozenset({int, float, complex, bool, str, bytes, bytearray, type(None), range})
_CONTAINERS = (list, tuple, set, frozenset)
_IN_MEMORY_FILES = (io.BytesIO, io.StringIO)
_ADVICE = (
    "pass picklable data (plain values, arrays, dataclasses), and create locks, sockets "
    "or open files inside the worker, for example with Pool(initializer=...) and "
    "aiopar.worker_state()"
)


# ── arguments ──────────────────────────────────────────────────────────────────────────


class _OverBudget(Exception):
    """The walk looked at its budget of objects without finishing."""


def _plain_state(kind: type) -> bool:
    """Whether instances of ``kind`` pickle as "their class + their ``__dict__``"."""
    return (
        getattr(kind, "__reduce_ex__", None) is object.__reduce_ex__
        and getattr(kind, "__reduce__", None) is object.__reduce__
        and getattr(kind, "__getstate__", object.__getstate__) is object.__getstate__
        and "__slots__" not in vars(kind)
    )


def _is_open_file(value: object) -> bool:
    return (
        isinstance(value, io.IOBase)
        and not isinstance(value, _IN_MEMORY_FILES)
        and not any(value is stream for stream in (sys.stdin, sys.stdout, sys.stderr))
    )


def _pickles(value: object) -> bool:
    try:
        pickle.dumps(value)
    except Exception:
        try:
            import cloudpickle

            cloudpickle.dumps(value)
        except Exception:
            return False
    return True


class _Culprit:
    """What cannot be sent, and where: ``path`` from the root (``args[0].lock``)."""

    def __init__(self, value: object, path: str, is_file: bool) -> None:
        self.value = value
        self.path = path
        self.is_file = is_file


_END: Any = object()
# How to write one step of a path, by its kind.
_STEPS = {
    "index": "[{!r}]",
    "key": " (the key {!r})",
    "element": " (an element)",
    "attribute": ".{}",
}
_Children = Iterator[tuple[object, tuple[str, object]]]


class _Walker:
    """One check's walk over one or more roots, sharing what it learnt between them.

    Iterative, with a stack of iterators: a container's items are taken one at a time,
    so the budget counts every object looked at, and a big list costs nothing up front.

    Args:
        budget: most objects to look at (None: no limit); past it, ``find`` raises
            :class:`_OverBudget`.
    """

    def __init__(self, budget: int | None) -> None:
        from collections.abc import Awaitable

        # Stand for a value computed elsewhere (a TaskRef is Awaitable: it has __await__).
        self._skip = (Awaitable,)
        self._verdicts: dict[object, bool] = {}  # type (or ("class", type)) -> refused
        self._seen: set[int] = set()
        self._kept: list[object] = []  # what _seen holds the ids of, kept alive
        self._left = budget

    def find(self, root: object, root_path: str) -> _Culprit | None:
        """The first object under ``root`` that cannot be pickled, or None."""
        # The containers on the way down: (index of the parent, kind of step, key).
        steps: list[tuple[int, str, object]] = [(-1, "root", root_path)]
        outcome = self._look(root)
        if isinstance(outcome, _Culprit):
            outcome.path = _path(steps, 0)
            return outcome
        stack: list[tuple[_Children, int]] = [] if outcome is None else [(outcome, 0)]
        while stack:
            children, at = stack[-1]
            entry = next(children, _END)
            if entry is _END:
                stack.pop()
                continue
            if self._left is not None:
                self._left -= 1
                if self._left < 0:
                    raise _OverBudget
            child, (kind, key) = entry
            outcome = self._look(child)
            if outcome is None:
                continue
            steps.append((at, kind, key))
            if isinstance(outcome, _Culprit):
                outcome.path = _path(steps, len(steps) - 1)
                return outcome
            stack.append((outcome, len(steps) - 1))
        return None

    def _look(self, value: object) -> _Culprit | _Children | None:
        """A culprit (its path left blank), the children of a container to walk, or
        None for a value that pickles (or was seen before)."""
        kind = type(value)
        if kind in _ALWAYS or isinstance(value, self._skip):
            return None
        module = kind.__module__.split(".")[0]
        if module == "numpy" and not getattr(getattr(value, "dtype", None), "hasobject", True):
            return None
        if module == "pandas":
            return None
        if _is_open_file(value):
            return _Culprit(value, "", True)
        if id(value) in self._seen:
            return None
        self._seen.add(id(value))
        self._kept.append(value)
        if isinstance(value, list | tuple):
            return ((item, ("index", index)) for index, item in enumerate(value))
        if isinstance(value, set | frozenset):
            return ((item, ("element", None)) for item in value)
        if isinstance(value, dict):
            return itertools.chain.from_iterable(
                ((key, ("key", key)), (item, ("index", key))) for key, item in value.items()
            )
        if _plain_state(kind) and isinstance(getattr(value, "__dict__", None), dict):
            # A dataclass or plain object: its class, then its attributes, so that a
            # big array it holds is passed over by type, never pickled here.
            key = ("class", kind)
            if key not in self._verdicts:
                self._verdicts[key] = not _pickles(kind)
            if self._verdicts[key]:
                return _Culprit(value, "", False)
            return ((item, ("attribute", name)) for name, item in vars(value).items())
        verdict = self._verdicts.get(kind)
        if verdict is None:
            verdict = self._verdicts[kind] = not _pickles(value)
        return _Culprit(value, "", False) if verdict else None


def _path(steps: list[tuple[int, str, object]], at: int) -> str:
    parts = []
    while at >= 0:
        parent, kind, key = steps[at]
        parts.append(str(key) if kind == "root" else _STEPS[kind].format(key))
        at = parent
    return "".join(reversed(parts))


def _error(what: str, label: str, root: object, culprit: _Culprit, root_path: str) -> TypeError:
    found = type(culprit.value).__name__
    if culprit.is_file:
        name = getattr(culprit.value, "name", None)
        named = f" ({name!r})" if isinstance(name, str) else ""
        where = "is" if culprit.path == root_path else f"holds one: {culprit.path} is"
        return TypeError(
            f"{what} of {label} {where} an open file{named} (a {found}), which cannot be "
            "sent to a worker process; pass the file's path instead and open the file in "
            "the worker"
        )
    if culprit.path == root_path:
        return TypeError(
            f"{what} of {label} cannot be pickled to send it to a worker process "
            f"(a {found}); {_ADVICE}"
        )
    return TypeError(
        f"{what} of {label} (a {type(root).__name__}) cannot be pickled to send it to a "
        f"worker process: {culprit.path} (a {found}) cannot be pickled; {_ADVICE}"
    )


def first_unpicklable(values: Iterable[Any]) -> int | None:
    """Index of the first value that cannot be pickled, or None (TaskRefs and other
    awaitables, which stand for values, are passed over). No budget: for threads."""
    found = _first(values, None)
    return None if found is None else found[0]


def _first(values: Iterable[Any], budget: int | None) -> tuple[int, _Culprit] | None:
    walker = _Walker(budget)
    for index, value in enumerate(values):
        culprit = walker.find(value, f"items[{index}]")
        if culprit is not None:
            return index, culprit
    return None


def _all_plain(items: Sequence[Any]) -> bool:
    """Whether every item is a plain value (see :func:`plain_arguments`): a check in C
    of their types, a few hundredths of a microsecond an item."""
    return set(map(type, items)) <= PLAIN


def _first_unless_plain(items: Sequence[Any]) -> tuple[int, _Culprit] | None:
    return None if _all_plain(items) else _first(items, None)


def check_arguments(args: Sequence[Any], kwargs: dict[str, Any], label: str) -> None:
    """Raise TypeError naming the first argument of a call that cannot be pickled.

    Looks at no more than :data:`LOOP_BUDGET` objects (see the module docstring).
    """
    walker = _Walker(LOOP_BUDGET)
    try:
        for index, arg in enumerate(args):
            culprit = walker.find(arg, f"args[{index}]")
            if culprit is not None:
                raise _error(f"positional argument {index}", label, arg, culprit, f"args[{index}]")
        for name, value in kwargs.items():
            root = f"kwargs[{name!r}]"
            culprit = walker.find(value, root)
            if culprit is not None:
                raise _error(f"keyword argument {name!r}", label, value, culprit, root)
    except _OverBudget:
        return  # the rest is checked when the job is pickled, off the loop


async def check_items(items: Sequence[Any], label: str, start: int = 0) -> bool:
    """Raise TypeError naming the first of ``items`` that cannot be pickled (its index
    counted from ``start``). A list or tuple of plain data passes after one pass of the
    C pickler (:func:`_plain_items`); otherwise long sequences, and items with more than
    :data:`LOOP_BUDGET` objects in all, are walked in a worker thread.

    Returns whether every item is plain data (builtin scalars and containers): lists of
    them can then be sent as they are, with no array to look for.

    Cancellation: a cancelled caller stops waiting; a walk in a thread runs to its end.
    """
    if isinstance(items, range):
        return True
    if type(items) in (list, tuple) and await _plain_items(items):
        return True
    found: tuple[int, _Culprit] | None
    if len(items) > INLINE_ITEMS:
        found = await anyio.to_thread.run_sync(_first_unless_plain, items)
    elif _all_plain(items):
        return True
    else:
        try:
            found = _first(items, LOOP_BUDGET)
        except _OverBudget:
            found = await anyio.to_thread.run_sync(_first, items, None)
    if found is not None:
        index, culprit = found
        what = f"items[{start + index}]"
        culprit.path = what + culprit.path[len(f"items[{index}]") :]  # count from `start`
        raise _error(what, label, items[index], culprit, what)
    return False


async def _plain_items(items: Sequence[Any]) -> bool:
    """Whether every item is plain data (``_plain.plain_pickles``): on this thread piece
    by piece (:data:`PLAIN_PIECE`), the rest in a worker thread once a piece is over
    its budget. False at the first object of another type: the walk tells what it is."""
    for begin in range(0, len(items), PLAIN_PIECE):
        if begin:
            await anyio.lowlevel.checkpoint()
        try:
            if not plain_pickles(items[begin : begin + PLAIN_PIECE], PLAIN_PIECE_BYTES):
                return False
        except OverBudget:
            return await anyio.to_thread.run_sync(plain_pickles, items[begin:])
    return True
