"""Numpy arrays through shared memory: same results as pickling, owned, never leaked."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import gc
import os
from pathlib import Path

import numpy as np
import pytest

import aiopar
from aiopar import _arena, _packing, _segments, _shm
from tests import faulty, workers

BIG = 300_000  # float64 items: 2.4 MB, above the 1 MiB threshold


def _token(pool: aiopar.Pool) -> str:
    return pool._require_dispatcher().token


def _named(token: str) -> list[str]:
    """Segments in /dev/shm made for the pool with ``token``."""
    return [name for name in os.listdir("/dev/shm") if f"-{token}-" in name]


async def _none_left(token: str) -> bool:
    """Wait (5 s at most) until no segment of the closed pool with ``token`` is left."""
    for _ in range(500):
        if not _named(token):
            return True
        await asyncio.sleep(0.01)
    return False


async def _only_arena_left(pool: aiopar.Pool) -> bool:
    """Wait (5 s at most) until the pool's only segments are its arena's: names of
    finished calls are removed by the unmap thread, a moment after the call."""
    token = _token(pool)
    for _ in range(500):
        gc.collect()
        if set(_named(token)) <= set(pool.shared_memory_segments()):
            return True
        await asyncio.sleep(0.01)
    return False


def _kinds() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    base = rng.normal(size=(600, 1000))
    structured = np.zeros(BIG, dtype=[("x", "f8"), ("n", "i4"), ("tag", "S3")])
    structured["x"] = rng.normal(size=BIG)
    structured["tag"] = b"abc"
    return {
        "c-contiguous": base,
        "fortran": np.asfortranarray(base),
        "strided": base[::2, ::3],
        "transposed": base.T,
        "structured": structured,
        "int8": rng.integers(-100, 100, size=3_000_000, dtype=np.int8),
        "bool": rng.random(BIG * 8) > 0.5,
        "object": np.array([{"i": i} for i in range(BIG // 10)], dtype=object),
        "small": base[:2, :3].copy(),
    }


@pytest.mark.asyncio
async def test_every_array_kind_equals_the_pickled_path() -> None:
    kinds = _kinds()
    with cf.ProcessPoolExecutor(1) as plain:
        async with (
            aiopar.Pool(workers=1, executor=plain) as pickled,
            aiopar.Pool(workers=2) as pool,
        ):
            for name, array in kinds.items():
                via_shm = await pool.submit(workers.identity, array)
                via_pickle = await pickled.submit(workers.identity, array)
                assert via_shm.dtype == via_pickle.dtype, name
                assert via_shm.shape == via_pickle.shape, name
                assert via_shm.flags.c_contiguous == via_pickle.flags.c_contiguous, name
                assert via_shm.flags.f_contiguous == via_pickle.flags.f_contiguous, name
                if array.dtype.hasobject:
                    assert list(via_shm) == list(array), name
                else:
                    np.testing.assert_array_equal(via_shm, array, err_msg=name)
                if array.ndim and array.dtype.hasobject is False and name != "small":
                    halves = await pool.amap_chunks(workers.identity, array, chunks=3)
                    np.testing.assert_array_equal(halves, array, err_msg=name)


@pytest.mark.asyncio
async def test_results_are_owned_writable_and_outlive_the_pool() -> None:
    data = np.arange(2_000_000, dtype=np.float64)
    async with aiopar.Pool(workers=2) as pool:
        negated = await pool.amap_chunks(workers.negate, data)
        matrix = await pool.submit(workers.make_matrix, 600)
        token = _token(pool)
        assert _named(token)  # the task result is still linked: it may feed other tasks
    assert negated.flags.writeable and matrix.flags.writeable
    negated[0] = 42.0
    matrix[0, 0] = 7.0
    np.testing.assert_array_equal(negated[1:], -data[1:])
    assert negated[0] == 42.0 and matrix[0, 0] == 7.0
    assert await _none_left(token)  # closing the pool unlinked every name; the data stays
    assert data[0] == 0.0  # the caller's input was never touched


@pytest.mark.asyncio
async def test_amap_chunks_answers_land_concatenated_without_a_copy() -> None:
    data = np.random.default_rng(1).normal(size=(4_000, 300))
    async with aiopar.Pool(workers=2) as pool:
        result = await pool.amap_chunks(workers.negate, data, chunks=5)
    np.testing.assert_array_equal(result, -data)
    assert type(result.base).__name__ == "mmap"  # one shared segment, written in place


@pytest.mark.asyncio
async def test_workers_cannot_write_into_the_callers_input() -> None:
    data = np.ones(BIG)
    with pytest.raises(ValueError, match="read-only"):
        await aiopar.amap_chunks(workers.scribble, data)
    with pytest.raises(ValueError, match="read-only"):
        await aiopar.submit(workers.scribble, data)
    assert (data == 1).all()


@pytest.mark.asyncio
async def test_task_results_feed_dependents_by_name_not_by_copy() -> None:
    async with aiopar.Pool(workers=2) as pool:
        a = pool.submit(workers.make_matrix, 500)
        b = pool.submit(workers.make_matrix, 501 - 1)
        product = await pool.submit(workers.matmul, a, b)
        # both inputs went by name: the arena (copies of parent arrays) stayed empty
        assert pool.shared_memory_segments() == []
        np.testing.assert_allclose(product, (await a) @ (await b))


@pytest.mark.asyncio
async def test_no_segment_left_after_a_crash_in_a_chunk() -> None:
    data = np.arange(2_000_000, dtype=np.float64)
    async with aiopar.Pool(workers=2) as pool:
        with pytest.raises(aiopar.WorkerCrashedError):
            await pool.amap_chunks(workers.die_on_big, data, chunks=4)
        token = _token(pool)
        assert await _only_arena_left(pool)
        np.testing.assert_array_equal(await pool.amap_chunks(workers.negate, data), -data)
    assert await _none_left(token)


@pytest.mark.asyncio
async def test_no_segment_left_after_cancellation() -> None:
    data = np.arange(4_000_000, dtype=np.float64)
    async with aiopar.Pool(workers=2, cancel="kill") as pool:
        await pool.amap(workers.square, range(4), chunksize=1)
        task = asyncio.ensure_future(pool.amap_chunks(workers.sleep_then, data, chunks=8))
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        token = _token(pool)
        assert await _only_arena_left(pool)
    assert await _none_left(token)


def test_arena_reuses_segments_and_unlinks_on_close() -> None:
    arena = _arena.Arena("unittest")
    first = arena.take(3 << 20)
    arena.give_back([first])
    second = arena.take(2 << 20)
    assert second is first  # big enough, not wastefully so: reused
    third = arena.take(64 << 20)
    assert third is not first
    arena.give_back([second, third])
    names = arena.names()
    assert sorted(names) == sorted([first.name, third.name])
    arena.close()
    assert not set(names) & set(os.listdir("/dev/shm"))


def test_joined_in_place_refuses_answers_that_are_not_back_to_back() -> None:
    import time

    arena = _arena.Arena("unittest")
    held = _shm.create_output(arena, 800)
    whole = _shm._root(held, shape=(100,), dtype=np.float64)
    joined = _shm.joined_in_place([whole[:40], whole[40:]], held)
    assert joined is not None and joined.shape == (100,)
    assert _shm.joined_in_place([whole[40:], whole[:40]], held) is None
    assert _shm.joined_in_place([whole[:40], np.zeros(60)], held) is None
    _shm.release_output(held, written=True)
    whole[:] = 1.0  # still valid after release: the arrays keep the mapping
    assert joined.sum() == 100.0
    assert held.name not in arena.names()  # the caller's arrays own it for now
    del whole, joined
    gc.collect()
    deadline = time.monotonic() + 5
    while held.name not in arena.names():
        assert time.monotonic() < deadline, "the unmap thread did not give the segment back"
        time.sleep(0.01)
    arena.close()
    assert held.name not in os.listdir("/dev/shm") and held.segment.closed


def test_arguments_a_worker_cannot_load_fail_the_job_not_the_worker() -> None:
    from aiopar import _worker

    missing = _packing._Entry("aiopar-no-such-segment", 0, (4,), np.dtype("f8"), "C")
    loaded = _packing.load_in_worker(b"", [missing])
    assert isinstance(loaded, _packing.LoadFailed)
    assert isinstance(loaded.error, FileNotFoundError)
    blob = __import__("cloudpickle").dumps(workers.identity)
    with pytest.raises(RuntimeError, match="could not load this job's arguments"):
        _worker.run_job(-1, blob, _worker.CALL, loaded)


def test_arena_takes_back_a_segment_after_close_without_closing_it_twice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    closed: list[str] = []
    real = _arena._close_segment
    monkeypatch.setattr(_arena, "_close_segment", lambda s: (closed.append(s.name), real(s)))
    arena = _arena.Arena("unittest")
    segment = arena.take(2 << 20)
    arena.close()
    arena.give_back([segment])  # its job ended after the pool closed
    assert closed == [segment.name]


# ── segments reused: results, outputs ───────────────────────────────────────────────


def _segment_of(array: np.ndarray) -> str | None:
    """The name of the pool segment ``array`` lives on (None: private memory)."""
    return _shm._adopted_name(_shm._root_buffer(array))


async def _back_in_arena(pool: aiopar.Pool, name: str) -> bool:
    """Wait (5 s at most) until segment ``name`` is kept by the pool's arena again."""
    for _ in range(500):
        if name in pool.shared_memory_segments():
            return True
        await asyncio.sleep(0.01)
    return False


@pytest.mark.asyncio
async def test_a_dead_result_goes_back_to_the_arena_and_holds_the_next_one() -> None:
    async with aiopar.Pool(workers=1) as pool:
        first = await pool.submit(workers.make_matrix, 600)
        name = _segment_of(first)
        assert name is not None and name not in pool.shared_memory_segments()
        del first
        assert await _back_in_arena(pool, name)
        second = await pool.submit(workers.make_matrix, 600)
        assert _segment_of(second) == name  # lent to the job, now the caller's
        assert name not in pool.shared_memory_segments()
        np.testing.assert_array_equal(second, workers.make_matrix(600))
        second[0, 0] = 1.0  # the caller's to write
        token = _token(pool)
    assert second[0, 0] == 1.0
    assert await _none_left(token)


@pytest.mark.asyncio
async def test_a_result_the_caller_keeps_is_never_reused() -> None:
    async with aiopar.Pool(workers=2) as pool:
        kept = [await pool.submit(workers.make_matrix, 600) for _ in range(4)]
        assert len({_segment_of(array) for array in kept}) == 4
        for array in kept:
            np.testing.assert_array_equal(array, workers.make_matrix(600))


@pytest.mark.asyncio
async def test_only_jobs_that_borrow_a_segment_wait_with_the_pool(tmp_path: Path) -> None:
    # Plain tasks go to the executor far ahead of the workers; a task that will be lent
    # an arena segment for its result waits with the pool while 2 jobs per worker are
    # already there, so that the segment goes to a job about to run.
    release = tmp_path / "go"
    async with aiopar.Pool(workers=1) as pool:
        dispatcher = pool._require_dispatcher()
        first = await pool.submit(workers.make_matrix, 600)  # its size is known from now on
        del first
        blocker = pool.submit(faulty.start_then_wait, (str(tmp_path), str(release), "b"))
        plain = [pool.submit(workers.square, i) for i in range(10)]
        borrowing = [pool.submit(workers.make_matrix, 600) for _ in range(3)]
        for _ in range(500):  # until the dispatcher has placed all 14
            if len(dispatcher._inflight) + len(dispatcher._pending) == 14:
                break
            await asyncio.sleep(0.01)
        assert (len(dispatcher._inflight), len(dispatcher._pending)) == (11, 3)
        release.touch()
        assert await blocker == "b"
        assert await aiopar.gather(*plain) == [i * i for i in range(10)]
        for array in await aiopar.gather(*borrowing):
            np.testing.assert_array_equal(array, workers.make_matrix(600))


@pytest.mark.asyncio
async def test_results_of_other_sizes_after_a_reused_one() -> None:
    async with aiopar.Pool(workers=1) as pool:
        name = _segment_of(await pool.submit(workers.make_matrix, 600))
        assert name is not None and await _back_in_arena(pool, name)
        bigger = await pool.submit(workers.make_matrix, 700)  # does not fit the lent one
        assert _segment_of(bigger) != name
        np.testing.assert_array_equal(bigger, workers.make_matrix(700))
        small = await pool.submit(workers.make_matrix, 100)  # pickled, no segment
        assert _segment_of(small) is None
        np.testing.assert_array_equal(small, workers.make_matrix(100))


@pytest.mark.asyncio
async def test_amap_chunks_writes_into_its_last_output_once_that_died() -> None:
    rng = np.random.default_rng(3)
    first_data, second_data = rng.normal(size=4 * BIG), rng.normal(size=4 * BIG)
    async with aiopar.Pool(workers=2) as pool:
        first = await pool.amap_chunks(workers.negate, first_data, chunks=4)
        name = _segment_of(first)
        assert name is not None
        del first
        assert await _back_in_arena(pool, name)
        second = await pool.amap_chunks(workers.negate, second_data, chunks=4)
        assert _segment_of(second) == name
        np.testing.assert_array_equal(second, -second_data)


@pytest.mark.asyncio
async def test_a_lent_segment_comes_back_after_a_crash() -> None:
    zeros, poison = np.zeros(BIG), np.full(BIG, 5_000.0)
    async with aiopar.Pool(workers=1) as pool:
        name = _segment_of(await pool.submit(workers.die_on_big, zeros))
        assert name is not None and await _back_in_arena(pool, name)
        with pytest.raises(aiopar.WorkerCrashedError):
            await pool.submit(workers.die_on_big, poison)  # dies with the segment lent
        assert await _back_in_arena(pool, name)
        assert await _only_arena_left(pool)
        again = await pool.submit(workers.die_on_big, zeros)
        np.testing.assert_array_equal(again, -zeros)


@pytest.mark.asyncio
async def test_task_graph_results_are_freed_without_the_garbage_collector() -> None:
    async with aiopar.Pool(workers=2) as pool:
        gc.disable()  # nothing may rely on the cycle collector to free results
        try:
            a = pool.submit(workers.make_matrix, 500)
            b = pool.submit(workers.make_matrix, 500)
            product = await pool.submit(workers.matmul, a, b)
            names = [_segment_of(await a), _segment_of(await b), _segment_of(product)]
            assert None not in names
            del a, b, product
            for name in names:
                assert name is not None and await _back_in_arena(pool, name)
        finally:
            gc.enable()


def test_arena_lends_only_free_segments_and_keeps_a_bounded_number_of_bytes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    arena = _arena.Arena("unittest")
    try:
        assert arena.lend(2 << 20) is None  # never creates one to lend
        first, second = arena.take(2 << 20), arena.take(2 << 20)
        arena.give_back([first, second])
        lent = arena.lend(2 << 20)
        assert lent is second  # the most recently used of those that fit
        assert arena.claim(lent.name) is lent and lent.name not in arena.names()
        monkeypatch.setattr(_arena.Arena, "keep_bytes", 3 << 20)
        assert arena.recycle(lent)  # two free 2 MiB segments exceed 3 MiB: the oldest goes
        assert arena.names() == [lent.name]
        assert first.name not in os.listdir("/dev/shm")
        huge = _segments.Segment("aiopar-unittest-huge", 4 << 20, lent.map)
        assert not arena.recycle(huge)  # bigger than all it keeps: refused, nothing evicted
        assert arena.names() == [lent.name]
    finally:
        arena.close()
    assert not arena.recycle(first) and lent.name not in os.listdir("/dev/shm")
