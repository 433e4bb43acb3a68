"""A task's exception on its way back from the worker: :class:`Carried`.

Made in the worker (``_worker.run_job``), pickled there; loaded in the parent by the
thread that settles the job (``_settling.py``, ``_inline.py``). An exception that plain
pickle refuses goes by value (cloudpickle), one that cannot be pickled at all as a
:class:`aiopar.RemoteError` copy, and a BaseException that is no Exception
(``sys.exit()`` in a task) as a :class:`aiopar.TaskExited`.

Imported by every worker at start-up: imports nothing heavy.
"""

from __future__ import annotations

import pickle
import traceback
from collections.abc import Callable
from typing import Any

from ._envelopes import _PICKLE_PROTOCOL

__all__ = ["Carried"]


class _ByValue(Exception):
    """Carries an exception that only cloudpickle can pickle (say, a class defined in
    ``__main__`` or a notebook); it unpickles as that exception itself."""

    def __init__(self, exc: BaseException) -> None:
        super().__init__(str(exc))
        self.exc = exc

    def __reduce__(self) -> tuple[Callable[[bytes], object], tuple[bytes]]:
        import cloudpickle

        return (pickle.loads, (bytes(cloudpickle.dumps(self.exc, protocol=_PICKLE_PROTOCOL)),))


def _portable_exception(exc: BaseException) -> BaseException:
    """``exc`` if it survives a pickle round trip, else a carrier or a RemoteError copy."""
    try:
        pickle.loads(pickle.dumps(exc, protocol=_PICKLE_PROTOCOL))
    except Exception:
        pass
    else:
        return exc
    try:
        import cloudpickle

        pickle.loads(cloudpickle.dumps(exc, protocol=_PICKLE_PROTOCOL))
    except Exception:
        from .errors import RemoteError

        cls = type(exc)
        return RemoteError(
            f"{cls.__module__}.{cls.__qualname__}",
            str(exc),
            "".join(traceback.format_exception(exc)),
        )
    return _ByValue(exc)


def _as_exception(exc: BaseException) -> Exception:
    """``exc``, or for a BaseException that is no Exception (``sys.exit()``,
    KeyboardInterrupt, GeneratorExit...) a :class:`aiopar.TaskExited` that stands for it:
    in the caller it is the failure of this one task, not the caller's own exit."""
    if isinstance(exc, Exception):
        return exc
    from .errors import TaskExited

    cls = type(exc)
    code = exc.code if isinstance(exc, SystemExit) else None
    return TaskExited(
        f"{cls.__module__}.{cls.__qualname__}" if cls.__module__ != "builtins" else cls.__name__,
        str(exc),
        "".join(traceback.format_exception(exc)),
        code=code if code is None or isinstance(code, int | str) else repr(code),
    )


def _exception_pickle(exc: BaseException) -> bytes:
    """``exc`` pickled (by value if plain pickle refuses it), or a RemoteError copy."""
    portable = _portable_exception(exc)
    if isinstance(portable, _ByValue):
        import cloudpickle

        return bytes(cloudpickle.dumps(exc, protocol=_PICKLE_PROTOCOL))
    return pickle.dumps(portable, protocol=_PICKLE_PROTOCOL)


class Carried(Exception):
    """Carries a task's exception back to the parent as a pickle, loaded there by
    :meth:`load` (see :class:`Packed` for why): an exception whose class the parent
    cannot rebuild fails its own job as a :class:`aiopar.RemoteError`, instead of
    breaking the pool. Within one process (a thread-based ``executor=``) it holds the
    exception itself.
    """

    def __init__(
        self,
        exc: BaseException | None,
        data: bytes = b"",
        type_name: str = "",
        message: str = "",
        remote_traceback: str = "",
    ) -> None:
        if exc is not None:
            cls = type(exc)
            type_name = f"{cls.__module__}.{cls.__qualname__}"
            message = str(exc)
        super().__init__(f"{type_name}: {message}")
        self.exc = exc
        self.data = data
        self.type_name = type_name
        self.message = message
        self.remote_traceback = remote_traceback

    def __reduce__(self) -> tuple[Callable[..., object], tuple[Any, ...]]:
        assert self.exc is not None
        return (
            Carried,
            (
                None,
                _exception_pickle(self.exc),
                self.type_name,
                self.message,
                "".join(traceback.format_exception(self.exc)),
            ),
        )

    def load(self) -> BaseException:
        """The task's exception, with the worker's traceback as ``__cause__``."""
        if self.exc is not None:
            return self.exc
        try:
            exc: BaseException = pickle.loads(self.data)
        except Exception as error:
            from .errors import RemoteError

            exc = RemoteError(
                self.type_name,
                f"{self.message} (the exception cannot be rebuilt in this process: "
                f"{type(error).__name__}: {error})",
                self.remote_traceback,
            )
        if self.__cause__ is not None:  # concurrent.futures' text of the remote traceback
            exc.__cause__ = self.__cause__
        return exc
