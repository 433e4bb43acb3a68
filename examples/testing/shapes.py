"""The code under test: an async function that spreads CPU work over an aiopar pool.

``area`` runs in the worker processes (or in the test process with
``pytest --aiopar-inline``); ``total_area`` runs on the caller's event loop.
"""

from __future__ import annotations

import math

import aiopar


def area(shape: tuple[str, float]) -> float:
    """The area of ``("circle", radius)`` or ``("square", side)``."""
    kind, size = shape
    if size < 0:
        raise ValueError(f"a {kind} cannot have a negative size: {size}")
    if kind == "circle":
        return math.pi * size * size
    if kind == "square":
        return size * size
    raise ValueError(f"unknown shape {kind!r}")


async def total_area(shapes: list[tuple[str, float]], pool: aiopar.Pool | None = None) -> float:
    """The sum of the shapes' areas, computed in ``pool`` (default: the default pool)."""
    areas = await (pool.amap(area, shapes) if pool is not None else aiopar.amap(area, shapes))
    return math.fsum(areas)
