"""tree_reduce."""

from __future__ import annotations

import functools
import operator

import anyio
import pytest

import aiopar
from tests import workers


@pytest.mark.asyncio
async def test_tree_reduce_equals_reduce_for_non_commutative_op() -> None:
    words = [f"w{i}," for i in range(101)]
    expected = functools.reduce(workers.concat, words)
    assert await aiopar.tree_reduce(workers.concat, words) == expected
    for size in (1, 2, 7, 1000):
        assert await aiopar.tree_reduce(workers.concat, words, chunksize=size) == expected


@pytest.mark.asyncio
async def test_tree_reduce_initial_empty_and_single() -> None:
    assert await aiopar.tree_reduce(workers.add, [], initial=5) == 5
    assert await aiopar.tree_reduce(workers.concat, ["b", "c"], initial="a") == "abc"
    assert await aiopar.tree_reduce(workers.add, [42]) == 42
    with pytest.raises(TypeError, match="empty"):
        await aiopar.tree_reduce(workers.add, [])


@pytest.mark.asyncio
async def test_tree_reduce_of_many_cheap_items_makes_few_jobs() -> None:
    pool = aiopar.get_default_pool()
    dispatcher = pool._require_dispatcher()
    sent = []
    original = dispatcher.submit

    def counting_submit(job):  # type: ignore[no-untyped-def]
        sent.append(job)
        original(job)

    dispatcher.submit = counting_submit  # type: ignore[method-assign]
    try:
        result = await aiopar.tree_reduce(operator.add, range(100_000))
    finally:
        del dispatcher.submit
    assert result == sum(range(100_000))
    assert len(sent) < 4 * pool.workers + 2


@pytest.mark.asyncio
async def test_tree_reduce_depth_is_logarithmic() -> None:
    # A pure tree (chunksize=1) over 8 items: the pairs of each level are fixed up front,
    # whatever order the jobs finish in, so the depth is log2(8) = 3.
    async with aiopar.Pool(workers=2) as pool:
        dispatcher = pool._require_dispatcher()
        order = []
        original = dispatcher.submit

        def recording_submit(job):  # type: ignore[no-untyped-def]
            order.append(job.payload[0])
            original(job)

        dispatcher.submit = recording_submit  # type: ignore[method-assign]
        assert await pool.tree_reduce(workers.add, list(range(1, 9)), chunksize=1) == 36
    assert order[:4] == [(1, 2), (3, 4), (5, 6), (7, 8)]
    assert sorted(order[4:6]) == [(3, 7), (11, 15)]
    assert order[6] == (10, 26)


@pytest.mark.asyncio
async def test_tree_reduce_takes_taskrefs_awaitables_and_async_iterables() -> None:
    async def later(value: int) -> int:
        await anyio.sleep(0.01)
        return value

    async def source():  # type: ignore[no-untyped-def]
        for i in range(5):
            yield i

    items = [aiopar.submit(workers.square, 2), later(3), 5, 6, aiopar.submit(workers.identity, 7)]
    assert await aiopar.tree_reduce(workers.add, items) == 4 + 3 + 5 + 6 + 7
    assert await aiopar.tree_reduce(workers.add, source()) == 10
    refs = [aiopar.submit(workers.sleep_then, i, 0.01 * (10 - i)) for i in range(10)]
    assert await aiopar.tree_reduce(workers.add, refs, ordered=False) == 45


@pytest.mark.asyncio
async def test_tree_reduce_failure_propagates() -> None:
    with pytest.raises(ValueError, match="bad item"):
        await aiopar.tree_reduce(workers.add, [1, aiopar.submit(workers.fail, 2), 3])
    with pytest.raises(TypeError, match="items"):
        await aiopar.tree_reduce(workers.add, 5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="chunksize"):
        await aiopar.tree_reduce(workers.add, [1, 2], chunksize=0)
