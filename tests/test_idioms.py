"""Idioms users bring from Ray, asyncio and the process-pool libraries: ``as_completed``,
``wait``, ``starmap``, ``put``, per-call ``cancel=``, ``.options()``, forced progress."""

from __future__ import annotations

import concurrent.futures as cf
import gc
import io
import os
import pathlib
import threading
from collections.abc import AsyncIterator, Awaitable, Callable

import anyio
import numpy as np
import psutil
import pytest

import aiopar
from aiopar import _shm
from tests import faulty, workers


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


# ── cancel= on each call ───────────────────────────────────────────────────────────


async def _cancel_once_started(folder: pathlib.Path, call: Callable[[], Awaitable[object]]) -> int:
    """Run ``call``; cancel it once its task has started; return the task's pid."""
    started = folder / "started"
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as group:

            async def run() -> None:
                await call()

            group.start_soon(run)
            with anyio.fail_after(30):
                while not started.exists() or not started.read_text():
                    await anyio.sleep(0.01)
            scope.cancel()
    assert scope.cancelled_caught
    return int(started.read_text())


def _is_alive(pid: int) -> bool:
    try:
        process = psutil.Process(pid)
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _kill_calls(pool: aiopar.Pool, folder: str) -> list[Callable[[], Awaitable[object]]]:
    task = workers.start_then_finish
    return [
        lambda: pool.amap(task, [folder], cancel="kill"),
        lambda: pool.starmap(task, [(folder,)], cancel="kill"),
        lambda: pool.amap_chunks(
            workers.start_then_finish_piece, [folder], cancel="kill", combine=None
        ),
        lambda: pool.tree_reduce(workers.start_then_finish_pair, [folder, folder], cancel="kill"),
        lambda: aiopar.amap(task, [folder], cancel="kill", pool=pool),
        lambda: pool.remote(task).options(cancel="kill").remote(folder),
        lambda: aiopar.remote(task, pool=pool, cancel="kill").remote(folder),
    ]


@pytest.mark.anyio
@pytest.mark.timeout(90)
async def test_cancel_kill_on_a_call_kills_its_running_task(tmp_path: pathlib.Path) -> None:
    async with aiopar.Pool(workers=1) as pool:  # cancel="wait" for the pool
        for index in range(len(_kill_calls(pool, ""))):
            folder = tmp_path / str(index)
            folder.mkdir()
            call = _kill_calls(pool, str(folder))[index]
            pid = await _cancel_once_started(folder, call)
            # the caller returned without waiting the 3 s out: the task never finished
            assert not (folder / "finished").exists(), index
            assert not _is_alive(pid), index
        assert await pool.submit(workers.square, 3) == 9  # a new worker took over


@pytest.mark.anyio
@pytest.mark.timeout(60)
async def test_cancel_wait_on_a_call_overrides_a_killing_pool(tmp_path: pathlib.Path) -> None:
    async with aiopar.Pool(workers=1, cancel="kill") as pool:
        call = lambda: pool.amap(workers.start_then_finish, [str(tmp_path)], cancel="wait")  # noqa: E731
        pid = await _cancel_once_started(tmp_path, call)
        assert (tmp_path / "finished").read_text() == str(pid)  # waited for, not killed
        assert pool.worker_pids() == [pid]


@pytest.mark.anyio
async def test_a_bad_cancel_option_is_refused(pool: aiopar.Pool) -> None:
    with pytest.raises(ValueError, match='cancel must be "wait", "kill" or None'):
        await pool.amap(workers.square, [1], cancel="terminate")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match='cancel must be "wait", "kill" or None'):
        pool.remote(workers.square).options(cancel="now")
    with cf.ThreadPoolExecutor(1) as executor:
        async with aiopar.Pool(executor=executor) as foreign:
            with pytest.raises(ValueError, match=r"cannot kill the workers of executor="):
                pool_call = foreign.imap(workers.square, [1], cancel="kill")
                await pool_call.__anext__()


# ── .options() ─────────────────────────────────────────────────────────────────────


@pytest.mark.anyio
@pytest.mark.timeout(60)
async def test_options_set_retries_per_task(pool: aiopar.Pool, tmp_path: pathlib.Path) -> None:
    crashy = pool.remote(faulty.crash_first_time)
    with pytest.raises(aiopar.WorkerCrashedError):
        await crashy.remote(str(tmp_path / "a"), "a")  # the pool's retries=0
    assert await crashy.options(retries=1).remote(str(tmp_path / "b"), "b") == "b"
    assert await crashy.options(max_retries=1).remote(str(tmp_path / "c"), "c") == "c"
    ray_style = aiopar.remote(faulty.crash_first_time, pool=pool, max_retries=2)
    assert await ray_style.remote(str(tmp_path / "d"), "d") == "d"
    with pytest.raises(aiopar.WorkerCrashedError):  # the original kept its options
        await crashy.remote(str(tmp_path / "e"), "e")


@pytest.mark.anyio
async def test_options_pool_and_copies(pool: aiopar.Pool) -> None:
    square = aiopar.remote(workers.square)
    on_pool = square.options(pool=pool)
    assert await on_pool.remote(4) == 16
    assert on_pool._pool is pool and square._pool is None
    assert on_pool(5) == 25  # still callable here
    assert await square.options(cancel="kill", retries=0, pool=pool).remote(3) == 9


@pytest.mark.parametrize(
    ("option", "hint"),
    [
        ("num_cpus", r"Pool\(workers=n\)"),
        ("num_gpus", r"Pool\(workers=n\)"),
        ("resources", r"Pool\(workers=n\)"),
        ("memory", r"Pool\(workers=n\)"),
        ("num_returns", "return a tuple"),
        ("max_calls", r"max_tasks_per_child"),
        ("retry_exceptions", "only when its worker crashed"),
        ("runtime_env", "initializer"),
        ("scheduling_strategy", "no placement"),
        ("name", "named after their function"),
    ],
)
def test_rays_other_options_are_refused_with_the_aiopar_way(option: str, hint: str) -> None:
    square = aiopar.remote(workers.square)
    with pytest.raises(TypeError, match=rf"Ray's option {option}= is not supported.*{hint}"):
        square.options(**{option: 1})
    with pytest.raises(TypeError, match=rf"Ray's option {option}="):
        aiopar.remote(workers.square, **{option: 1})


def test_bad_option_values_are_refused() -> None:
    square = aiopar.remote(workers.square)
    with pytest.raises(TypeError, match="unknown option colour="):
        square.options(colour="red")
    with pytest.raises(ValueError, match="retry forever"):
        square.options(max_retries=-1)
    with pytest.raises(ValueError, match="retries must be an int >= 0"):
        square.options(retries=-2)
    with pytest.raises(TypeError, match=r"pool must be an aiopar\.Pool"):
        square.options(pool="default")


# ── put ────────────────────────────────────────────────────────────────────────────


def _segment_names(pool: aiopar.Pool) -> set[str]:
    token = pool._dispatcher.token  # type: ignore[union-attr]
    return {name for name in os.listdir("/dev/shm") if token in name}


@pytest.mark.anyio
@pytest.mark.timeout(60)
async def test_put_places_an_array_once_for_every_task(pool: aiopar.Pool) -> None:
    data = np.arange(1_000_000, dtype=np.float64)  # 8 MB
    ref = pool.put(data)
    assert ref.done()
    stored = await ref
    assert np.array_equal(stored, data) and stored is not data
    name = _shm._adopted_name(_shm._root_buffer(stored))
    assert name is not None  # in a segment of the pool
    before = _segment_names(pool)
    answers = await aiopar.gather(*[pool.submit(workers.segment_of, ref) for _ in range(12)])
    answers += await pool.amap(workers.segment_of, [stored] * 4)
    assert answers == [(name, float(data.sum()))] * 16  # the same segment, never a copy
    assert _segment_names(pool) == before  # nothing was copied for the tasks
    data[0] = 42.0  # a copy was stored: later changes do not reach it
    assert (await ref)[0] == 0.0


@pytest.mark.anyio
@pytest.mark.timeout(60)
async def test_put_segment_lives_with_the_ref_and_goes_with_the_pool() -> None:
    async with aiopar.Pool(workers=1) as pool:
        ref = pool.put({"weights": np.ones(300_000), "name": "model"})
        stored = await ref
        name = _shm._adopted_name(_shm._root_buffer(stored["weights"]))
        assert name is not None and os.path.exists(f"/dev/shm/{name}")
        assert stored["name"] == "model"
        assert await pool.submit(workers.segment_of, stored["weights"]) == (name, 300_000.0)
        del stored
        gc.collect()
        assert await pool.submit(workers.segment_of, (await ref)["weights"]) == (name, 300_000.0)
        kept = await ref
    assert not os.path.exists(f"/dev/shm/{name}")  # the pool closed: the name is gone
    assert kept["weights"].sum() == 300_000.0  # the arrays stay readable
    del ref, kept  # no_leaks checks that nothing of it stays in /dev/shm


@pytest.mark.anyio
async def test_put_of_small_and_plain_values(pool: aiopar.Pool) -> None:
    items = [1, 2, 3]
    ref = aiopar.put(items, pool=pool)
    items.append(4)
    assert await ref == [1, 2, 3]
    assert await pool.submit(workers.total, ref) == 6
    increment = await pool.put(lambda x: x + 1)  # copied by cloudpickle
    assert increment(1) == 2
    with pytest.raises(TypeError, match=r"put\(\) keeps a copy"):
        pool.put(threading.Lock())


# ── progress ───────────────────────────────────────────────────────────────────────


@pytest.mark.anyio
@pytest.mark.timeout(60)
async def test_forced_progress_draws_on_a_stream_that_is_not_a_terminal(
    pool: aiopar.Pool, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await pool.amap(workers.square, range(20), progress=True) == [x * x for x in range(20)]
    assert capsys.readouterr().err == ""  # captured stderr is no terminal: nothing drawn
    assert await pool.amap(workers.square, range(20), progress="always", chunksize=5) == [
        x * x for x in range(20)
    ]
    drawn = capsys.readouterr().err
    assert "20/20" in drawn and "square" in drawn
    await pool.starmap(workers.add, [(1, 2)] * 6, progress="always")
    assert "6/6" in capsys.readouterr().err
    await pool.amap_chunks(
        workers.sum_chunk, list(range(100)), chunks=4, combine=None, progress="always"
    )
    assert "4/4" in capsys.readouterr().err


@pytest.mark.anyio
@pytest.mark.timeout(60)
async def test_progress_takes_a_bar_of_ones_own(pool: aiopar.Pool) -> None:
    from tqdm import tqdm

    stream = io.StringIO()
    with tqdm(total=30, file=stream, desc="two maps") as bar:
        await pool.amap(workers.square, range(10), progress=bar)
        await pool.amap(workers.square, range(20), progress=bar)
        assert bar.n == 30  # updated by both calls, left open by them
    assert "two maps" in stream.getvalue() and "30/30" in stream.getvalue()
    with pytest.raises(TypeError, match='progress must be True, False, "always"'):
        await pool.amap(workers.square, range(3), progress="yes")  # type: ignore[arg-type]
