"""submit / TaskRef dependencies, gather, remote."""

from __future__ import annotations

import collections
import concurrent.futures as cf

import anyio
import pytest

import aiopar
from tests import workers


@pytest.mark.asyncio
async def test_submit_returns_at_once_and_await_gives_the_result() -> None:
    ref = aiopar.submit(workers.add, 2, 3)
    assert isinstance(ref, aiopar.TaskRef)
    assert await ref == 5
    assert ref.done() and not ref.cancelled()
    assert ref.future.result() == 5
    assert await ref == 5  # awaiting again is fine
    assert "done" in repr(ref)


@pytest.mark.asyncio
async def test_refs_in_nested_containers_are_replaced_by_results() -> None:
    a = aiopar.submit(workers.square, 2)  # 4
    b = aiopar.submit(workers.square, 3)  # 9
    Point = collections.namedtuple("Point", "x y")
    ref = aiopar.submit(
        workers.total, [a, (b, {"k": a})], frozenset({b}), Point(a, 1), extra={"deep": [[b]]}
    )
    assert await ref == 4 + 9 + 4 + 9 + 4 + 1 + 9


@pytest.mark.asyncio
async def test_dependent_waits_for_its_dependencies() -> None:
    slow = aiopar.submit(workers.sleep_then, 5, 0.3)
    after = aiopar.submit(workers.add, slow, 1)
    assert not after.done()
    assert await after == 6
    assert slow.done()


@pytest.mark.asyncio
async def test_failed_dependency_fails_dependents_without_running_them(tmp_path) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "ran.txt"
    bad = aiopar.submit(workers.fail, "x")
    child = aiopar.submit(workers.append_line, str(marker), bad)  # 2nd arg unused
    grandchild = aiopar.submit(workers.identity, child)
    with pytest.raises(ValueError, match="bad item 'x'"):
        await grandchild
    with pytest.raises(ValueError, match="bad item 'x'"):
        await child
    assert not marker.exists()


@pytest.mark.asyncio
async def test_cancelled_dependency_cancels_dependents() -> None:
    first = aiopar.submit(workers.sleep_then, 1, 0.3)
    blocked = aiopar.submit(workers.add, first, 1)
    waiting = aiopar.submit(workers.add, blocked, 1)
    assert blocked.cancel()
    assert blocked.cancelled()
    with pytest.raises(cf.CancelledError):
        await waiting
    assert await first == 1


def test_submit_needs_no_running_loop() -> None:
    ref = aiopar.submit(workers.square, 7)
    assert ref.future.result(timeout=30) == 49


@pytest.mark.asyncio
async def test_seed_dag_create_matrix_then_multiply() -> None:
    import numpy as np

    x = aiopar.submit(np.full, (50, 50), 2.0)
    y = aiopar.submit(np.full, (50, 50), 3.0)
    z = aiopar.submit(np.dot, x, y)
    np.testing.assert_allclose(await z, np.full((50, 50), 300.0))


@pytest.mark.asyncio
async def test_gather_keeps_order_and_accepts_coroutines() -> None:
    async def local() -> str:
        await anyio.sleep(0)
        return "local"

    refs = [aiopar.submit(workers.sleep_then, i, 0.05 * (5 - i)) for i in range(5)]
    assert await aiopar.gather(*refs, local()) == [0, 1, 2, 3, 4, "local"]
    assert await aiopar.gather() == []


@pytest.mark.asyncio
async def test_gather_return_exceptions() -> None:
    results = await aiopar.gather(
        aiopar.submit(workers.square, 3), aiopar.submit(workers.fail, 1), return_exceptions=True
    )
    assert results[0] == 9
    assert isinstance(results[1], ValueError)


@pytest.mark.asyncio
async def test_gather_cancels_the_rest_on_first_failure(tmp_path) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "late.txt"

    async def fails_at_once() -> None:
        raise KeyError("first failure")

    async with aiopar.Pool(workers=1) as pool:
        blocker = pool.submit(workers.sleep_then, 0, 0.5)  # keeps the only worker busy
        queued = pool.submit(workers.append_line, str(marker))
        with pytest.raises(KeyError, match="first failure"):
            await aiopar.gather(queued, fails_at_once())
        assert await blocker == 0
        with pytest.raises(cf.CancelledError):
            await queued
    assert not marker.exists()


@pytest.mark.asyncio
async def test_gather_of_refs_only_from_two_pools_with_repeats() -> None:
    async with aiopar.Pool(workers=1) as one, aiopar.Pool(workers=2) as two:
        a = one.submit(workers.sleep_then, "a", 0.2)
        b = two.submit(workers.square, 4)
        done = two.submit(workers.square, 5)
        assert await done == 25
        assert await aiopar.gather(a, b, a, done) == ["a", 16, "a", 25]


@pytest.mark.asyncio
async def test_gather_of_refs_only_cancels_the_rest_in_every_pool(tmp_path) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "late.txt"
    async with aiopar.Pool(workers=1) as one, aiopar.Pool(workers=1) as two:
        blockers = [pool.submit(workers.sleep_then, 0, 0.5) for pool in (one, two)]
        queued = [pool.submit(workers.append_line, str(marker)) for pool in (one, two)]
        dropped = two.submit(workers.append_line, str(marker))
        assert dropped.cancel()  # fails first: the queued ones never start
        with pytest.raises(cf.CancelledError):
            await aiopar.gather(queued[0], dropped, queued[1])
        assert all(ref.cancelled() for ref in queued)
        assert await aiopar.gather(*blockers) == [0, 0]
    assert not marker.exists()


@pytest.mark.asyncio
async def test_gather_refuses_non_awaitables() -> None:
    with pytest.raises(TypeError, match="awaitables"):
        await aiopar.gather(42)  # type: ignore[arg-type]


@aiopar.remote
def remote_add(a: int, b: int) -> int:
    return a + b


@pytest.mark.asyncio
async def test_remote_runs_locally_when_called_and_remotely_with_remote() -> None:
    assert remote_add(1, 2) == 3
    one = remote_add.remote(1, 2)
    two = remote_add.remote(one, 10)
    assert isinstance(two, aiopar.TaskRef)
    assert await two == 13
    assert remote_add.__name__ == "remote_add"


@pytest.mark.asyncio
async def test_remote_bound_to_a_pool_and_seed_aggregation() -> None:
    async with aiopar.Pool(workers=2) as pool:
        add = pool.remote(workers.add)
        chain = add.remote(1, 2)
        for value in range(3, 9):
            chain = add.remote(chain, value)
        tree = [add.remote(1, 2), add.remote(3, 4), add.remote(5, 6), add.remote(7, 8)]
        top = add.remote(add.remote(tree[0], tree[1]), add.remote(tree[2], tree[3]))
        assert await aiopar.gather(chain, top) == [36, 36]
        decorated = aiopar.remote(pool=pool)(workers.square)
        assert await decorated.remote(5) == 25


def test_remote_refuses_non_callables() -> None:
    with pytest.raises(TypeError, match="callable"):
        aiopar.remote(42)  # type: ignore[call-overload]


@pytest.mark.asyncio
async def test_gather_accepts_and_checks_pool() -> None:
    async with aiopar.Pool(workers=1) as pool:
        assert await aiopar.gather(pool.submit(workers.square, 3), pool=pool) == [9]
    with pytest.raises(TypeError, match="pool"):
        await aiopar.gather(pool="nope")  # type: ignore[arg-type]
