"""cloudpickle that keeps the file name of the code it pickles by value.

cloudpickle pickles functions it cannot import by name (those of ``__main__``, lambdas,
closures) by value, and writes ``"<dynamic-code>"`` as the file name of their code, so a
traceback from a worker read ``File "<dynamic-code>", line 7, in explode``. The pickler
here sends the real ``co_filename`` along and puts it back after cloudpickle has rebuilt
the code: the remote traceback names the user's script, and the worker, which can read
that file, shows its lines. Runs wherever a function is pickled (the caller's thread)
and, to unpickle, in the worker.

:func:`pickle_function` is how every call pickles its function: checked first (see
``_checks.check_function``), refused with a message that names the argument.
"""

from __future__ import annotations

import io
import pickle
import types
import weakref
from collections import ChainMap
from collections.abc import Callable
from typing import Any, ClassVar

import cloudpickle

from ._checks import check_function

__all__ = ["dumps", "func_name", "goes_by_name", "pickle_function"]

_cloudpickle_code_reduce: Callable[[types.CodeType], tuple[Any, tuple[Any, ...]]] = (
    cloudpickle.Pickler.dispatch_table[types.CodeType]
)


def _code_in_file(
    rebuild: Callable[..., types.CodeType], args: tuple[Any, ...], filename: str
) -> types.CodeType:
    """cloudpickle's rebuilt code object, with its own file name back (in the worker)."""
    return rebuild(*args).replace(co_filename=filename)


def _reduce_code(code: types.CodeType) -> tuple[Any, tuple[Any, ...]]:
    rebuild, args = _cloudpickle_code_reduce(code)
    return _code_in_file, (rebuild, args, code.co_filename)


class _Pickler(cloudpickle.Pickler):  # type: ignore[misc]
    dispatch_table: ClassVar[ChainMap[Any, Any]] = ChainMap(
        {types.CodeType: _reduce_code}, cloudpickle.Pickler.dispatch_table
    )


def dumps(obj: object, protocol: int | None = None) -> bytes:
    """Pickle ``obj`` as :func:`cloudpickle.dumps` does, keeping code file names."""
    with io.BytesIO() as file:
        _Pickler(file, protocol=protocol).dump(obj)
        return file.getvalue()


def func_name(func: object) -> str:
    """A short readable name for a function, for labels and messages."""
    name = getattr(func, "__qualname__", None) or getattr(func, "__name__", None)
    return name if isinstance(name, str) else type(func).__name__


# The pickles of functions that go by name, by function object: each is checked and
# pickled once, not once per call. Those pickled by value (defined in __main__, lambdas,
# closures) are pickled at each call: the globals and cells they carry may have changed.
_by_name: weakref.WeakKeyDictionary[Any, bytes] = weakref.WeakKeyDictionary()


def _goes_by_name(func: object) -> bool:
    """Whether ``func``'s pickle is a reference (its module and name): the same at
    every call, since the worker looks the name up."""
    if not isinstance(func, types.FunctionType | types.BuiltinFunctionType):
        return False
    module = getattr(func, "__module__", None)
    if not isinstance(module, str) or module == "__main__":
        return False
    if module in cloudpickle.list_registry_pickle_by_value():
        return False
    try:
        pickle.dumps(func)  # plain pickle refuses what it cannot find by its name
    except Exception:
        return False
    return True


def goes_by_name(func: object) -> bool:
    """Whether ``func``'s pickle, once made by :func:`pickle_function`, is kept and the
    same at every call (see ``_by_name``)."""
    try:
        return func in _by_name
    except TypeError:  # not hashable, or no weak reference
        return False


def pickle_function(func: object, argument: str = "func", *, initializer: bool = False) -> bytes:
    """Pickle ``func`` with cloudpickle, or raise a TypeError that names the argument
    (also for the kinds of callables that cannot run in a worker: see check_function).

    A function that goes by name is checked and pickled once (see ``_by_name``).
    """
    try:
        return _by_name[func]
    except (KeyError, TypeError):  # TypeError: not hashable, or no weak reference
        pass
    check_function(func, argument, initializer=initializer)
    try:
        blob = dumps(func)  # cloudpickle, keeping the code's file name
    except Exception as exc:
        raise TypeError(
            f"{argument}={func_name(func)} cannot be pickled to send it to a worker process "
            f"({type(exc).__name__}: {exc}); define it at module level, or keep unpicklable "
            "objects (locks, sockets, open files) out of its closure and load them in the "
            "worker, for example with Pool(initializer=...) and aiopar.worker_state()"
        ) from exc
    if not initializer and _goes_by_name(func):
        _by_name[func] = blob
    return blob
