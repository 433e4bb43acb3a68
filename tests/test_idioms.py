"""Idioms users bring from Ray, asyncio and the process-pool libraries: ``as_completed``,
``wait``, ``starmap``, ``put``, per-call ``cancel=``, ``.options()``, forced progress."""

from __future__ import annotations

import concurrent.futures as cf
import pathlib
from collections.abc import AsyncIterator

import anyio
import pytest

import aiopar
from tests import workers


@pytest.fixture
async def pool() -> AsyncIterator[aiopar.Pool]:
    async with aiopar.Pool(workers=2) as pool:
        yield pool


def _release(path: pathlib.Path) -> None:
    path.write_text("go")


# ── as_completed and wait ──────────────────────────────────────────────────────────


@pytest.mark.anyio
@pytest.mark.timeout(60)
async def test_as_completed_yields_refs_in_the_order_they_finish(
    pool: aiopar.Pool, tmp_path: pathlib.Path
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    done = pool.submit(workers.identity, "done")
    await done
    slow = pool.submit(workers.wait_for_file, str(second), "slow")
    fast = pool.submit(workers.wait_for_file, str(first), "fast")
    order = []
    async for ref in aiopar.as_completed([slow, fast, done]):
        order.append(ref)
        assert ref.done()  # awaiting it returns at once
        if ref is done:
            _release(first)
        elif ref is fast:
            _release(second)
    assert order == [done, fast, slow]
    assert [await ref for ref in order] == ["done", "fast", "slow"]


@pytest.mark.anyio
@pytest.mark.timeout(60)
async def test_as_completed_yields_failures_too_and_each_entry_once(pool: aiopar.Pool) -> None:
    ok = pool.submit(workers.square, 3)
    bad = pool.submit(workers.fail, 1)
    seen = [ref async for ref in aiopar.as_completed([ok, bad, ok])]
    assert sorted(map(id, seen)) == sorted(map(id, [ok, bad, ok]))
    with pytest.raises(ValueError, match="bad item 1"):
        await bad


@pytest.mark.anyio
@pytest.mark.timeout(60)
async def test_wait_returns_done_and_pending_like_ray(
    pool: aiopar.Pool, tmp_path: pathlib.Path
) -> None:
    gate = tmp_path / "gate"
    blocked = [pool.submit(workers.wait_for_file, str(gate), n) for n in range(2)]
    quick = pool.submit(workers.identity, "quick")  # waits for a free worker
    refs = [*blocked, quick]
    # both workers wait for the gate: nothing finishes until it opens
    done, pending = await aiopar.wait(refs, timeout=0.2)
    assert (done, pending) == ([], refs)
    _release(gate)
    done, pending = await aiopar.wait(refs)  # num_returns=None: one, as in Ray
    assert len(done) == 1 and len(pending) == 2
    assert set(map(id, done + pending)) == set(map(id, refs))
    done, pending = await aiopar.wait(refs, num_returns=3)
    assert (done, pending) == (refs, [])  # in the order given
    done, pending = await aiopar.wait(refs, num_returns=2, timeout=0)
    assert (done, pending) == (refs[:2], refs[2:])  # at most num_returns, first ones first


@pytest.mark.anyio
async def test_wait_and_as_completed_refuse_bad_arguments(pool: aiopar.Pool) -> None:
    ref = pool.submit(workers.square, 2)
    with pytest.raises(TypeError, match=r"wrap it: \[ref\]"):
        await aiopar.wait(ref)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"got int at refs\[1\]"):
        await aiopar.wait([ref, 3])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="between 1 and len"):
        await aiopar.wait([ref], num_returns=2)
    with pytest.raises(ValueError, match="timeout"):
        await aiopar.wait([ref], timeout=-1)
    with pytest.raises(TypeError, match="TaskRefs"):
        async for _ in aiopar.as_completed([ref, "x"]):  # type: ignore[list-item]
            pass
    assert await aiopar.wait([]) == ([], [])
    await ref


@pytest.mark.anyio
@pytest.mark.timeout(60)
async def test_cancelling_a_waiter_leaves_the_tasks_alone(
    pool: aiopar.Pool, tmp_path: pathlib.Path
) -> None:
    gate = tmp_path / "gate"
    ref = pool.submit(workers.wait_for_file, str(gate), "kept")
    with anyio.move_on_after(0.1):
        await aiopar.wait([ref])
    with anyio.move_on_after(0.1):
        async for _ in aiopar.as_completed([ref]):
            pass
    assert not ref.done() and not ref.cancelled()
    _release(gate)
    assert await ref == "kept"
    assert not isinstance(ref.future.exception(), cf.CancelledError)


# ── starmap ────────────────────────────────────────────────────────────────────────


async def _pairs(count: int) -> AsyncIterator[tuple[int, int]]:
    for n in range(count):
        await anyio.lowlevel.checkpoint()
        yield n, n + 1


@pytest.mark.anyio
@pytest.mark.timeout(60)
async def test_starmap_unpacks_each_tuple(pool: aiopar.Pool) -> None:
    pairs = [(x, 10 * x) for x in range(30)]
    assert await pool.starmap(workers.add, pairs) == [11 * x for x in range(30)]
    assert await pool.starmap(pow, [(2, 5), (3, 2)], chunksize=1) == [32, 9]
    unordered = await pool.starmap(workers.add, pairs, ordered=False, chunksize=4)
    assert sorted(unordered) == [11 * x for x in range(30)]
    assert await pool.starmap(workers.add, _pairs(5)) == [1, 3, 5, 7, 9]
    assert await aiopar.starmap(workers.concat, [("a", "b"), ["c", "d"]], pool=pool) == [
        "ab",
        "cd",
    ]
    assert await pool.starmap(workers.total, [(), (1,), (1, 2, 3)]) == [0, 1, 6]


@pytest.mark.anyio
@pytest.mark.timeout(60)
async def test_starmap_says_what_an_item_must_be(pool: aiopar.Pool) -> None:
    with pytest.raises(TypeError, match=r"starmap\(add\).*got int: 3 \(use amap\(\)"):
        await pool.starmap(workers.add, [(1, 2), 3])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="bad item 3"):
        await pool.starmap(workers.fail_on, [(x,) for x in range(5)])
    with pytest.raises(TypeError, match="func must be callable"):
        await pool.starmap(42, [(1,)])  # type: ignore[arg-type]
