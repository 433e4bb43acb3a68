"""``Pool(inline=True)`` and ``AIOPAR_INLINE``: jobs run in this process, in order, with
the results, errors, dependencies, cancellation, progress and worker state of a pool of
worker processes.

The property test runs every public call on random inputs three ways (worker
processes, inline, inline without pickling) and compares what comes back: the
results, or the type of the exception.
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import itertools
import os
import pathlib
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aiopar
from tests import workers, workers_inline

PROPERTY = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def outcome(run: Callable[[aiopar.Pool], Awaitable[Any]], pool: aiopar.Pool) -> Any:
    """What ``run(pool)`` gives: ``("ok", result)`` or ``("error", exception type)``."""

    async def main() -> Any:
        try:
            return ("ok", await run(pool))
        except Exception as exc:
            return ("error", type(exc))

    return anyio.run(main)


@pytest.fixture
def pools() -> Iterator[list[aiopar.Pool]]:
    """A pool of 2 worker processes, an inline one, an inline one without pickling; all
    with 2 workers, so that chunk sizes (and so the pieces a function sees) agree. Made
    once for all the examples of the property (hypothesis runs them in one test)."""
    made = [aiopar.Pool(workers=2), aiopar.Pool(2, inline=True), aiopar.Pool(2, inline="nopickle")]
    for pool in made:
        pool.open()
    yield made
    for pool in made:
        pool.close()


errors = st.none() | st.sampled_from(workers_inline.ERRORS)
items = st.lists(st.integers(-40, 40), max_size=40)
chunksizes = st.none() | st.integers(1, 8)


async def _imap(pool: aiopar.Pool, func: Any, xs: list[int], chunksize: int | None) -> list[Any]:
    return [x async for x in pool.imap(func, xs, chunksize=chunksize)]


async def _graph(pool: aiopar.Pool, xs: list[int], error: str | None) -> list[Any]:
    """Tasks, tasks depending on them, and a gather that keeps the exceptions."""
    compute = functools.partial(workers_inline.compute, error=error)
    firsts = [pool.submit(compute, x) for x in xs]
    pairs = [pool.submit(workers.add, a, b) for a, b in itertools.pairwise(firsts)]
    stored = pool.put(xs)
    total = pool.submit(workers.total, [stored], bonus={"pairs": pairs[:3]})
    results = await pool.gather(*firsts, *pairs, total, return_exceptions=True)
    return [type(r) if isinstance(r, BaseException) else r for r in results]


@pytest.mark.timeout(300)
@PROPERTY
@given(
    call=st.sampled_from(["amap", "imap", "amap_chunks", "starmap", "graph", "tree_reduce"]),
    xs=items,
    error=errors,
    chunksize=chunksizes,
    chunks=st.integers(1, 5),
)
def test_every_call_gives_the_same_inline_and_in_processes(
    pools: list[aiopar.Pool],
    call: str,
    xs: list[int],
    error: str | None,
    chunksize: int | None,
    chunks: int,
) -> None:
    compute = functools.partial(workers_inline.compute, error=error)
    runs: dict[str, Callable[[aiopar.Pool], Awaitable[Any]]] = {
        "amap": lambda pool: pool.amap(compute, xs, chunksize=chunksize),
        "imap": lambda pool: _imap(pool, compute, xs, chunksize),
        "amap_chunks": lambda pool: pool.amap_chunks(
            functools.partial(workers_inline.piece_sum, error=error),
            xs,
            chunks=chunks,
            combine=None,
        ),
        "starmap": lambda pool: pool.starmap(workers.add, [(x, -x // 2) for x in xs]),
        "graph": lambda pool: _graph(pool, xs, error),
        "tree_reduce": lambda pool: pool.tree_reduce(
            workers_inline.concat_checked,
            [f"{x}!" if error and x % 7 == 3 else str(x) for x in xs],
            chunksize=chunksize,
        ),
    }
    if call == "amap_chunks" and not xs:
        return  # the same ValueError both ways, already covered by the empty cases above
    processes, inline, nopickle = (outcome(runs[call], pool) for pool in pools)
    assert inline == processes
    if error != "unpicklable":  # the one thing that differs without the round trip
        assert nopickle == processes
    else:
        assert nopickle[0] == processes[0]


# ── what a user of the in-process mode relies on ─────────────────────────────────────


@pytest.mark.anyio
async def test_jobs_run_in_this_process_with_the_initializer_run_once() -> None:
    before = workers_inline.initializer_runs
    async with aiopar.Pool(
        workers=3, inline=True, initializer=workers_inline.counting_initializer, initargs=("i",)
    ) as pool:
        results = await pool.amap(workers_inline.pid_and_state, range(8), chunksize=1)
        assert await pool.submit(workers_inline.pid_and_state) == (os.getpid(), f"i-{os.getpid()}")
        assert pool.worker_pids() == []
    assert set(results) == {(os.getpid(), f"i-{os.getpid()}")}
    assert workers_inline.initializer_runs == before + 1
    with pytest.raises(RuntimeError, match="outside a worker"):
        aiopar.worker_state()  # only during the pool's jobs


@pytest.mark.anyio
async def test_a_failing_initializer_fails_every_task_as_in_a_worker() -> None:
    async with aiopar.Pool(inline=True, initializer=workers.failing_initializer) as pool:
        for _ in range(2):
            with pytest.raises(RuntimeError, match="initializer failed") as info:
                await pool.submit(workers.square, 2)
            assert isinstance(info.value.__cause__, Exception)


@pytest.mark.anyio
async def test_nopickle_hands_the_objects_themselves() -> None:
    items: list[str] = []
    async with aiopar.Pool(inline="nopickle") as pool:
        assert await pool.submit(workers.mutate, items) is items
        assert items == ["changed in the task"]
        assert await pool.amap(workers_inline.same_object, [items]) == [items]
        # What no worker could receive is still refused before the job is made.
        with pytest.raises(TypeError, match="cannot be pickled to send it to a worker"):
            await pool.submit(workers_inline.same_object, threading.Lock())
    async with aiopar.Pool(inline=True) as pool:
        copied: list[str] = []
        assert await pool.submit(workers.mutate, copied) == ["changed in the task"]
        assert copied == []
        with pytest.raises(TypeError, match="cannot be pickled to send it back"):
            await pool.submit(workers.return_lock)


@pytest.mark.anyio
async def test_progress_counts_every_item() -> None:
    class Bar:
        def __init__(self) -> None:
            self.n = 0

        def update(self, n: int = 1) -> None:
            self.n += n

    bar, chunk_bar = Bar(), Bar()
    async with aiopar.Pool(workers=2, inline=True) as pool:
        assert await pool.amap(workers.square, range(20), chunksize=3, progress=bar) == [
            x * x for x in range(20)
        ]
        await pool.amap_chunks(
            workers.sum_chunk, list(range(20)), chunks=4, combine=None, progress=chunk_bar
        )
    assert (bar.n, chunk_bar.n) == (20, 4)


@pytest.mark.anyio
@pytest.mark.parametrize("cancel", ["wait", "kill"])
async def test_cancelling_the_caller_drops_queued_jobs(tmp_path: pathlib.Path, cancel: str) -> None:
    path = tmp_path / "runs.txt"
    record = functools.partial(workers.append_item, str(path))
    async with aiopar.Pool(workers=2, inline=True, cancel=cancel) as pool:  # type: ignore[arg-type]
        refs = [pool.submit(workers.square, x) for x in range(3)]
        async with anyio.create_task_group() as group:
            group.start_soon(functools.partial(pool.amap, record, range(50), chunksize=1))
            for _ in range(5):
                await anyio.sleep(0)  # one job runs per turn of the loop
            group.cancel_scope.cancel()
        assert await aiopar.gather(*refs) == [0, 1, 4]
        late = pool.submit(workers.square, 5)
        assert late.cancel()
        with pytest.raises(cf.CancelledError):
            await late
    ran = path.read_text().split() if path.exists() else []
    assert ran == [str(index) for index in range(len(ran))]  # in order,
    assert len(ran) < 50  # and the queued rest never ran


def test_a_breakpoint_in_a_task_stops_in_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    stops: list[tuple[int, str]] = []

    def hook(*args: Any, **kwargs: Any) -> None:
        frame = sys._getframe(1)  # the task's own frame, as pdb would show it
        stops.append((os.getpid(), frame.f_code.co_name))

    monkeypatch.setattr(sys, "breakpointhook", hook)

    async def main() -> list[int]:
        async with aiopar.Pool(inline=True) as pool:
            return await pool.amap(workers_inline.breakpoint_here, [1, 2])

    assert anyio.run(main) == [2, 3]
    assert stops == [(os.getpid(), "breakpoint_here")] * 2


def test_bad_options_are_refused_naming_them() -> None:
    with pytest.raises(ValueError, match=r'inline must be True.*"nopickle".*got 1'):
        aiopar.Pool(inline=1)  # type: ignore[arg-type]
    with (
        cf.ThreadPoolExecutor(1) as executor,
        pytest.raises(ValueError, match=r"inline=\.\.\. runs the jobs in this process"),
    ):
        aiopar.Pool(inline=True, executor=executor)
    assert "inline=True" in repr(aiopar.Pool(inline=True))


def _default_pool_report(value: str) -> subprocess.CompletedProcess[str]:
    code = (
        "import asyncio, os, aiopar\n"
        "from tests import workers_inline\n"
        "async def main():\n"
        "    got = await aiopar.amap(workers_inline.pid_and_state, range(3))\n"
        "    print(aiopar.get_default_pool().inline, {pid == os.getpid() for pid, _ in got})\n"
        "asyncio.run(main())\n"
    )
    env = {**os.environ, "AIOPAR_INLINE": value}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )


@pytest.mark.timeout(90)
def test_aiopar_inline_turns_the_default_pool_in_process() -> None:
    done = _default_pool_report("1")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "{True}"]
    done = _default_pool_report("nopickle")
    assert done.stdout.split() == ["nopickle", "{True}"]
    done = _default_pool_report("yes please")
    assert done.returncode != 0
    assert "AIOPAR_INLINE='yes please' is not understood" in done.stderr
