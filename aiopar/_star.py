"""``Star`` and ``AsyncStar``: the function ``starmap`` sends, ``func(*item)`` per item.

Pickled by reference with the user's function inside; called in a worker (or in the
in-process runner), on the worker's event loop for ``AsyncStar``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["AsyncStar", "Star"]


class Star:
    """Calls ``func(*args)`` for one item ``args``: the function ``starmap`` sends.

    It bears the name of ``func``, for labels and messages.
    """

    def __init__(self, func: Callable[..., Any]) -> None:
        self.func = func
        self.__qualname__ = getattr(func, "__qualname__", type(func).__name__)

    def __call__(self, args: Any) -> Any:
        try:
            unpacked = tuple(args)
        except TypeError:
            raise TypeError(
                f"starmap({self.__qualname__}) calls func(*item) for each item, so each item "
                f"must be a tuple of arguments; got {type(args).__name__}: {args!r:.80} (use "
                "amap() to pass each item as one argument)"
            ) from None
        return self.func(*unpacked)


class AsyncStar(Star):
    """:class:`Star` for an ``async def`` function: awaits ``func(*args)``."""

    async def __call__(self, args: Any) -> Any:
        return await super().__call__(args)
