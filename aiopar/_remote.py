"""``RemoteFunction``: a function with a Ray-style ``.remote()``, made by ``aiopar.remote``
and ``Pool.remote``.

``f.remote(*args)`` is ``submit`` (``_tasks.py``) to the function's pool, or to the
default pool when it has none. The default pool is made by ``_default.py``, which sits
above ``Pool`` (it makes one); this module sits below it (``Pool.remote`` makes
``RemoteFunction``s), so ``_default.py`` hands us its ``get_default_pool`` when it is
imported, instead of us importing it (see :func:`use_default_pool`). Runs in the
caller's thread.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, Generic, ParamSpec, TypeVar, overload

from ._checks import check_function
from ._options import TaskOptions
from ._pool_base import PoolBase
from ._tasks import TaskRef, submit

__all__ = ["RemoteFunction", "use_default_pool"]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


def _no_default_pool() -> PoolBase:
    raise RuntimeError("aiopar._default was not imported: import aiopar first")


_default_pool: Callable[[], PoolBase] = _no_default_pool


def use_default_pool(get_default_pool: Callable[[], PoolBase]) -> None:
    """Make ``.remote()`` of a function without a pool submit to ``get_default_pool()``
    (called once, by ``_default.py``)."""
    global _default_pool
    _default_pool = get_default_pool


class RemoteFunction(Generic[P, R]):
    """A function with a Ray-style ``.remote()``; made by :func:`aiopar.remote`.

    ``f(*args)`` still runs the function here; ``f.remote(*args)`` submits it to the
    pool and returns a :class:`TaskRef`, to await or to pass to other ``.remote()``
    calls as a dependency. ``f.options(...)`` returns a copy with other options.
    """

    def __init__(
        self,
        func: Callable[P, R],
        *,
        pool: PoolBase | None = None,
        options: TaskOptions | None = None,
    ) -> None:
        check_function(func, "remote() of func")
        self._func = func
        self._options = options if options is not None else TaskOptions()
        if pool is not None:
            self._options = self._options.merged({"pool": pool})
        functools.update_wrapper(self, func)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self._func(*args, **kwargs)

    @property
    def _pool(self) -> PoolBase | None:
        return self._options.pool

    def options(self, **options: Any) -> RemoteFunction[P, R]:
        """Return a copy of this function whose ``.remote()`` calls use these options.

        Like Ray's ``f.options(...)``; the original keeps its own options::

            ref = slow.options(cancel="kill", retries=2).remote(x)

        Args:
            cancel: ``"wait"`` or ``"kill"``: what cancelling a caller awaiting the
                task does to it once it runs (see :class:`TaskRef`); None: the pool's.
            retries: how many times the task runs again when its worker crashes;
                None: the pool's. ``max_retries`` (Ray's name) is accepted too.
            pool: the :class:`aiopar.Pool` to submit to; None: the default pool.

        Raises:
            TypeError: for an option aiopar does not have: Ray's ``num_cpus``,
                ``num_gpus``, ``resources``, ``memory``, ``num_returns``, ``name``,
                ``runtime_env``, ``scheduling_strategy`` and the like are refused with
                the aiopar way to get what they are for.
            ValueError: for a bad value, naming the option.
        """
        return RemoteFunction(self._func, options=self._options.merged(options))

    @overload
    def remote(
        self: RemoteFunction[P, Coroutine[Any, Any, T]], *args: Any, **kwargs: Any
    ) -> TaskRef[T]: ...
    @overload
    def remote(self, *args: Any, **kwargs: Any) -> TaskRef[R]: ...
    def remote(self, *args: Any, **kwargs: Any) -> TaskRef[Any]:
        """Submit ``func(*args, **kwargs)``; TaskRefs among the arguments are dependencies."""
        pool = self._pool if self._pool is not None else _default_pool()
        return submit(pool, self._func, args, kwargs, self._options)

    def __reduce__(self) -> tuple[Any, ...]:
        # Sent to a worker (say, called inside another task): the plain function will do.
        return (RemoteFunction, (self._func,))

    def __repr__(self) -> str:
        return f"<aiopar.RemoteFunction {getattr(self._func, '__qualname__', self._func)!r}>"
