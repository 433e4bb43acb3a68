"""Refusing arguments that cannot reach a worker, before any work starts.

Arguments are pickled only when a job is sent (in the executor's feeder thread, off the
event loop), which is too late to refuse a bad call as a whole: its first jobs may
already have run. So calls look at their arguments first, cheaply:

* values of types that always pickle (numbers, strings, bytes, numpy arrays without
  object dtype, pandas objects) are passed over by type, whatever their size;
* lists, tuples, sets and dicts are walked;
* an object that pickles as "its class + its ``__dict__``" (a dataclass, a plain
  class) is looked at through its class and its attributes, walked by these rules;
* any other object is pickled once *per type* (the first instance of each type stands
  for the others), plainly and then with cloudpickle.

A sequence of more than :data:`INLINE_ITEMS` items is looked at in a worker thread, so
the event loop never stalls on a long list.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable, Sequence
from typing import Any

import anyio

__all__ = ["check_arguments", "check_items", "first_unpicklable"]

INLINE_ITEMS = 2_000
_ALWAYS = frozenset({int, float, complex, bool, str, bytes, bytearray, type(None), range})
_CONTAINERS = (list, tuple, set, frozenset)
_MAX_DEPTH = 32


def _plain_state(kind: type) -> bool:
    """Whether instances of ``kind`` pickle as "their class + their ``__dict__``"."""
    return (
        getattr(kind, "__reduce_ex__", None) is object.__reduce_ex__
        and getattr(kind, "__reduce__", None) is object.__reduce__
        and getattr(kind, "__getstate__", object.__getstate__) is object.__getstate__
        and "__slots__" not in vars(kind)
    )


def _refused(
    value: object, verdicts: dict[object, bool], skip: tuple[type, ...], depth: int = 0
) -> bool:
    kind = type(value)
    if kind in _ALWAYS or (skip and isinstance(value, skip)):
        return False
    module = kind.__module__.split(".")[0]
    if module == "numpy" and not getattr(getattr(value, "dtype", None), "hasobject", True):
        return False
    if module == "pandas":
        return False
    if depth < _MAX_DEPTH and isinstance(value, _CONTAINERS):
        return any(_refused(item, verdicts, skip, depth + 1) for item in value)
    if depth < _MAX_DEPTH and isinstance(value, dict):
        return any(
            _refused(k, verdicts, skip, depth + 1) or _refused(v, verdicts, skip, depth + 1)
            for k, v in value.items()
        )
    if (
        depth < _MAX_DEPTH
        and _plain_state(kind)
        and isinstance(getattr(value, "__dict__", None), dict)
    ):
        # A dataclass or plain object: look at its class and walk its attributes, so
        # that a big array it holds is passed over by type, never pickled here.
        key = ("class", kind)
        if key not in verdicts:
            verdicts[key] = not _pickles(kind)
        return verdicts[key] or _refused(vars(value), verdicts, skip, depth + 1)
    verdict = verdicts.get(kind)
    if verdict is None:
        verdict = verdicts[kind] = not _pickles(value)
    return verdict


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


def _stand_ins() -> tuple[type, ...]:
    """Types that stand for a value computed elsewhere: never pickled themselves."""
    from collections.abc import Awaitable

    from ._tasks import TaskRef

    return (TaskRef, Awaitable)


def first_unpicklable(values: Iterable[Any]) -> int | None:
    """Index of the first value that cannot be pickled, or None (TaskRefs and other
    awaitables, which stand for values, are passed over)."""
    verdicts: dict[object, bool] = {}
    skip = _stand_ins()
    for index, value in enumerate(values):
        if _refused(value, verdicts, skip):
            return index
    return None


def _error(what: str, label: str, value: object) -> TypeError:
    return TypeError(
        f"{what} of {label} cannot be pickled to send it to a worker process "
        f"(a {type(value).__name__}); pass picklable data (plain values, arrays, "
        "dataclasses), and create locks, sockets or open files inside the worker, for "
        "example with Pool(initializer=...) and aiopar.worker_state()"
    )


def check_arguments(args: Sequence[Any], kwargs: dict[str, Any], label: str) -> None:
    """Raise TypeError naming the first argument of a call that cannot be pickled."""
    verdicts: dict[object, bool] = {}
    skip = _stand_ins()
    for index, arg in enumerate(args):
        if _refused(arg, verdicts, skip):
            raise _error(f"positional argument {index}", label, arg)
    for name, value in kwargs.items():
        if _refused(value, verdicts, skip):
            raise _error(f"keyword argument {name!r}", label, value)


async def check_items(items: Sequence[Any], label: str, start: int = 0) -> None:
    """Raise TypeError naming the first of ``items`` that cannot be pickled (its index
    counted from ``start``). Long sequences are looked at in a worker thread."""
    if isinstance(items, range):
        return
    if len(items) > INLINE_ITEMS:
        index = await anyio.to_thread.run_sync(first_unpicklable, items)
    else:
        index = first_unpicklable(items)
    if index is not None:
        raise _error(f"items[{start + index}]", label, items[index])
