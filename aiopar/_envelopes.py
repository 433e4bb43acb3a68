"""What crosses the pipe between the parent and a worker, and how it is pickled.

Arguments go out as an :class:`Outbound` (pickled by the executor's feeder thread in
the parent, big numpy arrays copied into shared memory there, see ``_packing.py``);
results come back as a :class:`Result` (pickled in the worker). Plain values skip the
envelopes: a task's arguments that are all numbers, strings, bytes or None (``Job.plain``)
go out as they are, and so does a result that is a number, bytes or None
(``_worker.RAW_RESULTS``): they hold no array, always pickle, and load without running
any code, so tiny tasks do not pay for a pickler of their own each way. Either arrives as a
:class:`Packed`: the pickle, not yet loaded, so that nothing of the user's runs in the
executor's own threads; :func:`unwrap` loads it in the thread that settles the job
(parent) or inside ``_worker.run_job`` (worker).

Imported by every worker at start-up: imports nothing heavy (numpy and cloudpickle
only when a payload needs them).
"""

from __future__ import annotations

import pickle
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["CALL", "MAP", "REDUCE", "Outbound", "Packed", "Portable", "Result", "dumps", "unwrap"]

# The kinds of job, and the shape of their payload.
CALL = "call"  # payload (args, kwargs): func(*args, **kwargs)
MAP = "map"  # payload [items]: [func(x) for x in items]
REDUCE = "reduce"  # payload [items]: functools.reduce(func, items)

_PICKLE_PROTOCOL = pickle.HIGHEST_PROTOCOL


def dumps(obj: object) -> bytes:
    """Pickle with plain pickle, falling back to cloudpickle (lambdas, closures, __main__)."""
    try:
        data = pickle.dumps(obj, protocol=_PICKLE_PROTOCOL)
    except Exception:
        pass
    else:
        if not _names_main(data):
            return data
    import cloudpickle

    return bytes(cloudpickle.dumps(obj, protocol=_PICKLE_PROTOCOL))


def _names_main(data: bytes) -> bool:
    """Whether a pickle refers to ``__main__`` when workers do not have its contents
    (python -c, a REPL, a notebook): then it must be made again with cloudpickle,
    which sends the classes of ``__main__`` by value."""
    if b"__main__" not in data:
        return False
    from ._main_module import main_goes_by_value

    return main_goes_by_value()


class Portable:
    """Carries an object across processes, pickling it when (and where) it is sent.

    The executor pickles its call arguments in its own feeder thread and a worker's
    result in the worker, so wrapping an object here keeps that work off the event
    loop, while still falling back to cloudpickle for what plain pickle refuses.
    Inside one process (a thread-based ``executor=``), the object is passed as is.
    """

    __slots__ = ("obj", "what")

    def __init__(self, obj: object, what: str | None = None) -> None:
        self.obj = obj
        self.what = what  # "the result of f", for the error if it cannot be pickled

    def __reduce__(self) -> tuple[Callable[..., object], tuple[Any, ...]]:
        try:
            return (Packed, (dumps(self.obj),))
        except Exception as exc:
            if self.what is None:
                raise
            raise TypeError(
                f"{self.what} cannot be pickled to send it back "
                f"({type(exc).__name__}: {exc}); return picklable data (plain values, "
                "arrays, dataclasses) from functions that run in workers"
            ) from None


class Packed:
    """What a :class:`Portable` becomes on the other side: its pickle, not yet loaded.

    Receiving one runs no code of the user's: the executor unpickles what crosses
    processes in its own threads and loop, where a failure (a class whose module only
    the sender can import, a ``__setstate__`` that raises) would break the whole pool
    and be blamed on a dead worker. :meth:`load` rebuilds the object later, where a
    failure is the failure of that one job: in the worker, inside :func:`run_job`; in
    the parent, in the thread that settles the job (never the event loop's).

    ``entries`` is the table of big arrays in shared memory (see ``_packing.py``), and
    ``token`` the pool's token when the result is loaded in the parent.
    """

    __slots__ = ("data", "entries", "token")

    def __init__(self, data: bytes, entries: Any = None, token: str | None = None) -> None:
        self.data = data
        self.entries = entries
        self.token = token

    def __reduce__(self) -> tuple[Callable[..., object], tuple[Any, ...]]:
        return (Packed, (self.data, self.entries, self.token))

    def load(self) -> object:
        """Unpickle the object (raises what unpickling raises)."""
        if self.entries is None:
            return pickle.loads(self.data)
        from . import _packing

        if self.token is None:
            return _packing.load_in_worker(self.data, self.entries)
        return _packing.load_in_parent(self.data, self.entries, self.token)


class Outbound(Portable):
    """Call arguments from the parent, with big numpy arrays placed in shared memory.

    Pickled in the executor's feeder thread: copies into the arena happen there, not on
    the event loop. ``segments`` receives the arena segments used, to give back later.
    """

    __slots__ = ("arena", "first_item", "kind", "label", "segments")

    def __init__(
        self,
        obj: object,
        arena: Any,
        segments: list[Any],
        *,
        kind: str = CALL,
        label: str = "a task",
        first_item: int = 0,
    ) -> None:
        super().__init__(obj)
        self.arena = arena
        self.segments = segments
        self.kind = kind
        self.label = label
        self.first_item = first_item

    def __reduce__(self) -> tuple[Callable[..., object], tuple[Any, ...]]:
        if self.arena is not None and "numpy" in sys.modules:
            from . import _packing

            try:
                data, entries, used = _packing.dump(self.obj, arena=self.arena)
            except Exception:
                pass  # not plain-picklable: cloudpickle below, arrays inline
            else:
                if not _names_main(data):
                    self.segments.extend(used)
                    return (Packed, (data, entries))
                self.arena.give_back(used)  # cloudpickle below, arrays inline
        try:
            return super().__reduce__()
        except Exception as exc:
            culprit = _culprit(self.kind, self.obj, self.first_item)
            raise TypeError(
                f"{culprit} of {self.label} cannot be pickled to send it to a worker "
                f"({type(exc).__name__}: {exc}); pass picklable data (plain values, arrays, "
                "dataclasses), and create locks, sockets or open files inside the worker"
            ) from None


class Result(Portable):
    """A worker's result, with big numpy arrays placed in shared memory.

    ``segment`` is the name the parent chose for this job's result segment;
    ``destination`` an optional slice of a parent segment for an ``amap_chunks`` answer.
    """

    __slots__ = ("destination", "loan", "segment", "token")

    def __init__(
        self,
        obj: object,
        segment: str,
        destination: Any,
        token: str,
        loan: Any,
        what: str | None = None,
    ) -> None:
        super().__init__(obj, what)
        self.segment = segment
        self.destination = destination
        self.token = token
        self.loan = loan

    def __reduce__(self) -> tuple[Callable[..., object], tuple[Any, ...]]:
        if "numpy" in sys.modules:
            from . import _packing

            try:
                data, entries, _ = _packing.dump(
                    self.obj,
                    result_segment=self.segment,
                    destination=self.destination,
                    loan=self.loan,
                )
            except Exception:
                pass
            else:
                return (Packed, (data, entries, self.token))
        return super().__reduce__()


def _culprit(kind: str, payload: Any, first_item: int) -> str:
    """Which argument or item of a job's payload cannot be pickled, in words."""
    import cloudpickle

    def refused(value: object) -> bool:
        try:
            cloudpickle.dumps(value)
        except Exception:
            return True
        return False

    if kind == CALL:
        args, kwargs = payload
        for index, arg in enumerate(args):
            if refused(arg):
                return f"positional argument {index}"
        for name, value in kwargs.items():
            if refused(value):
                return f"keyword argument {name!r}"
        return "an argument"
    for index, item in enumerate(payload):
        if refused(item):
            return f"items[{first_item + index}]"
    return "an item"


def unwrap(value: object) -> object:
    """The object a :class:`Portable` carries: the object itself in the process that
    made it, loaded from its :class:`Packed` pickle in another one.

    Raises:
        Exception: what loading the pickle raised.
    """
    if isinstance(value, Packed):
        return value.load()
    return value.obj if isinstance(value, Portable) else value
