"""Tests of ``shapes.py`` with aiopar's pytest plugin: no conftest.py needed.

Run with ``pytest`` in this folder; ``pytest --aiopar-inline`` runs the same tests
with the jobs in the test process (set a ``breakpoint()`` in ``shapes.area`` and it
stops there); ``pytest -n 2`` (pytest-xdist) gives each xdist worker a pool of its own.
"""

from __future__ import annotations

import math

import pytest
import shapes

import aiopar

# Every test here fails if it leaves worker processes, shared memory or open pools.
pytestmark = pytest.mark.aiopar_no_leaks

SHAPES = [("circle", 1.0), ("square", 2.0), ("square", 0.5)]
EXPECTED = math.pi + 4.0 + 0.25


@pytest.mark.asyncio  # pytest-asyncio (strict mode): a fresh loop for this test
async def test_total_area(aiopar_pool: aiopar.Pool) -> None:
    assert await shapes.total_area(SHAPES, pool=aiopar_pool) == pytest.approx(EXPECTED)


@pytest.mark.asyncio(loop_scope="module")  # a loop shared by this module's tests
async def test_errors_come_back_with_their_type(aiopar_pool: aiopar.Pool) -> None:
    with pytest.raises(ValueError, match="negative size"):
        await shapes.total_area([("circle", -1.0)], pool=aiopar_pool)


@pytest.mark.anyio  # anyio's plugin, on asyncio and on trio: the same pool serves both
@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_on_anyio_backends(aiopar_pool: aiopar.Pool, anyio_backend: str) -> None:
    assert await aiopar_pool.submit(shapes.area, ("square", 3.0)) == 9.0


@pytest.mark.asyncio
async def test_with_the_default_pool() -> None:
    # Code that calls aiopar.amap(...) uses the default pool: it starts once, serves
    # every test's loop, and runs inline with --aiopar-inline too.
    assert await shapes.total_area(SHAPES) == pytest.approx(EXPECTED)
