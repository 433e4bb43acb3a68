"""Fault injection: worker deaths, cancellation on trio, Ctrl-C, parent death, bad input.

What tests/test_errors.py and tests/test_cancel.py already cover is not repeated here.
Workers misbehave through the functions of tests/faulty.py. Every test runs under the
``no_leaks`` fixture of conftest.py, so each one also fails if it leaves a child process
or a shared-memory segment behind.

No timing is asserted. Waits are bounded (a hang guard, not a measurement); where the
order of events matters, a worker waits for a file the test creates.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import contextlib
import functools
import inspect
import os
import re
import select
import signal
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any

import anyio
import psutil
import pytest

import aiopar
from tests import faulty, workers
from tests.scripts import kill_group, script_process

# ── helpers ──────────────────────────────────────────────────────────────────────────


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _still_alive(pids: Iterable[int], within: float = 10.0) -> set[int]:
    """Poll until every pid is gone, for at most ``within`` seconds; return the living."""
    deadline = time.monotonic() + within
    alive = {pid for pid in pids if _alive(pid)}
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = {pid for pid in alive if _alive(pid)}
    return alive


async def _until(predicate: Callable[[], bool], within: float = 30.0) -> None:
    """Wait until ``predicate()`` holds; fail the test after ``within`` seconds (a hang guard)."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting after {within} s")
        await anyio.sleep(0.01)


def _markers(directory: Path, prefix: str) -> set[str]:
    return {p.name.split("-", 1)[1] for p in directory.glob(f"{prefix}-*")}


def _first_line(proc: subprocess.Popen[str], within: float = 60.0) -> str:
    """The script's first line of output, waiting at most ``within`` seconds."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], within)
    line = proc.stdout.readline() if ready else ""
    if not line:
        _, err = kill_group(proc)
        pytest.fail(f"the script printed no line within {within} s; stderr:\n{err}")
    return line


def _reports(stderr: str) -> int:
    """How many tracebacks were printed; a chained one (``During handling...``) or an
    exception group's (its members are indented) counts once."""
    lines = stderr.splitlines()
    heads = sum(
        line.startswith(("Traceback (most recent call last)", "  + Exception Group Traceback"))
        for line in lines
    )
    chained = sum(
        line.startswith(
            ("During handling of the above exception", "The above exception was the direct cause")
        )
        for line in lines
    )
    return heads - chained


def _descendants(pid: int) -> set[int]:
    try:
        return {child.pid for child in psutil.Process(pid).children(recursive=True)}
    except psutil.NoSuchProcess:
        return set()


# ── worker death: each names the task or chunk, and the exit code or signal ─────────


@pytest.mark.asyncio
async def test_segfault_names_the_task_and_sigsegv() -> None:
    async with aiopar.Pool(workers=2) as pool:
        with pytest.raises(aiopar.WorkerCrashedError) as info:
            await pool.submit(faulty.segfault)
        assert await pool.submit(workers.square, 7) == 49  # the next call works
    error = info.value
    assert error.exitcode == -signal.SIGSEGV
    assert error.pid is not None and not _alive(error.pid)
    assert error.task.startswith("task segfault#")
    assert f"worker process {error.pid} was killed by SIGSEGV while running task segfault#" in (
        str(error)
    )


@pytest.mark.asyncio
async def test_sigkill_mid_chunk_of_amap_chunks_names_the_chunk() -> None:
    data = list(range(40))  # four pieces of ten rows; row 25 is in piece 3
    async with aiopar.Pool(workers=2) as pool:
        with pytest.raises(aiopar.WorkerCrashedError) as info:
            await pool.amap_chunks(faulty.kill_mid_chunk, data, chunks=4, combine=None)
        assert info.value.exitcode == -signal.SIGKILL
        assert info.value.task == "chunk 3/4 of amap_chunks(kill_mid_chunk)"
        assert "was killed by SIGKILL while running chunk 3/4 of amap_chunks(kill_mid_chunk)" in (
            str(info.value)
        )
        # the pool was rebuilt: the same call on harmless data works
        harmless = list(range(20))
        answers = await pool.amap_chunks(faulty.kill_mid_chunk, harmless, chunks=4, combine=None)
        assert answers == [10, 35, 60, 85]


@pytest.mark.asyncio
async def test_os_exit_in_amap_names_the_chunk_and_exit_code() -> None:
    async with aiopar.Pool(workers=2) as pool:
        with pytest.raises(aiopar.WorkerCrashedError) as info:
            await pool.amap(faulty.exit_on, range(10), chunksize=2)  # item 5: chunk 3
        assert info.value.exitcode == 3
        assert "exited with code 3 while running chunk 3 of amap(exit_on)" in str(info.value)
        assert await pool.amap(faulty.exit_on, [1, 2, 3], chunksize=1) == [1, 2, 3]


@pytest.mark.asyncio
async def test_simulated_out_of_memory_kill_names_the_task_and_sigkill() -> None:
    async with aiopar.Pool(workers=1) as pool:
        with pytest.raises(aiopar.WorkerCrashedError) as info:
            await pool.submit(faulty.out_of_memory, 64)
        assert info.value.exitcode == -signal.SIGKILL
        assert "was killed by SIGKILL while running task out_of_memory#" in str(info.value)
        assert await pool.submit(workers.add, 2, 3) == 5


@pytest.mark.asyncio
async def test_queued_tasks_survive_a_crash_none_lost_none_duplicated(tmp_path: Path) -> None:
    log = tmp_path / "runs.log"
    async with aiopar.Pool(workers=2) as pool:
        crash = pool.submit(faulty.sleep_then_kill_self, 0.2)
        others = [pool.submit(faulty.logged_value, str(log), i, 0.05) for i in range(24)]
        with pytest.raises(aiopar.WorkerCrashedError, match="task sleep_then_kill_self#"):
            await crash
        assert await aiopar.gather(*others) == list(range(24))
        assert await pool.amap(workers.square, range(4)) == [0, 1, 4, 9]
    # every task ran (one running beside the crash may have run twice; its result
    # was still delivered once)
    assert {int(line) for line in log.read_text().split()} == set(range(24))


@pytest.mark.asyncio
async def test_tasks_sent_again_after_a_crash_run_in_the_order_they_were_submitted(
    tmp_path: Path,
) -> None:
    log = tmp_path / "runs.log"
    async with aiopar.Pool(workers=1) as pool:
        crash = pool.submit(faulty.sleep_then_kill_self, 0.2)
        # Queued in the executor behind the crash, none started: all are sent again.
        others = [pool.submit(faulty.logged_value, str(log), i, 0.0) for i in range(12)]
        with pytest.raises(aiopar.WorkerCrashedError):
            await crash
        assert await aiopar.gather(*others) == list(range(12))
    assert [int(line) for line in log.read_text().split()] == list(range(12))


@pytest.mark.asyncio
async def test_unordered_map_beside_a_crash_returns_each_result_once(tmp_path: Path) -> None:
    log = tmp_path / "runs.log"
    async with aiopar.Pool(workers=2) as pool:
        crash = pool.submit(faulty.sleep_then_kill_self, 0.1)
        mapped = functools.partial(faulty.logged_value, str(log))
        results = await pool.amap(mapped, range(30), chunksize=1, ordered=False)
        with pytest.raises(aiopar.WorkerCrashedError):
            await crash
    assert len(results) == 30
    assert sorted(results) == list(range(30))


@pytest.mark.asyncio
async def test_dependents_of_a_crashed_task_fail_with_the_crash_without_running(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "ran"
    async with aiopar.Pool(workers=2) as pool:
        crashed = pool.submit(faulty.kill_self)
        dependent = pool.submit(workers.append_line, str(marker), crashed)
        with pytest.raises(aiopar.WorkerCrashedError, match="task kill_self#") as info:
            await dependent
        assert info.value.exitcode == -signal.SIGKILL
        assert await pool.submit(workers.square, 3) == 9
    assert not marker.exists()


@pytest.mark.asyncio
async def test_retries_rerun_a_task_that_crashes_only_on_its_first_run(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    async with aiopar.Pool(workers=1, retries=1) as pool:
        assert await pool.submit(faulty.crash_first_time, str(runs), "ok") == "ok"
    assert runs.read_text().count("run") == 2

    # without retries the first run's crash is reported; the next call works
    runs_again = tmp_path / "runs-again"
    async with aiopar.Pool(workers=1) as pool:
        with pytest.raises(aiopar.WorkerCrashedError, match="task crash_first_time#"):
            await pool.submit(faulty.crash_first_time, str(runs_again), "ok")
        assert await pool.submit(faulty.crash_first_time, str(runs_again), "ok") == "ok"


@pytest.mark.asyncio
async def test_retries_rerun_a_crashed_map_chunk(tmp_path: Path) -> None:
    first = functools.partial(faulty.crash_first_time, str(tmp_path / "runs"))
    async with aiopar.Pool(workers=2, retries=1) as pool:
        assert await pool.amap(first, ["a", "b", "c"], chunksize=1) == ["a", "b", "c"]


# ── cancellation on trio ──────────────────────────────────────────────────────────────


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_trio_cancel_scope_drops_queued_chunks_and_waits_for_running(
    tmp_path: Path,
) -> None:
    release = tmp_path / "release"
    items = [(str(tmp_path), str(release), i) for i in range(12)]
    results: list[Any] = []
    scope = anyio.CancelScope()

    async def run(pool: aiopar.Pool) -> None:
        with scope:
            results.append(await pool.amap(faulty.start_then_wait, items, chunksize=1))

    async with aiopar.Pool(workers=2) as pool:
        async with anyio.create_task_group() as group:
            group.start_soon(run, pool)
            await _until(lambda: len(_markers(tmp_path, "start")) == 2)  # both workers busy
            scope.cancel()
            # Let the cancellation reach the dispatcher before the running chunks can end;
            # with cancel="wait" the call returns only once they have ended.
            await anyio.sleep(0.5)
            release.touch()
        assert scope.cancelled_caught
        assert results == []  # no result of the cancelled call is kept
        started = _markers(tmp_path, "start")
        assert len(started) == 2
        assert _markers(tmp_path, "end") == started  # the running chunks were awaited
        assert await pool.amap(workers.square, range(3)) == [0, 1, 4]
        await anyio.sleep(0.3)
        assert _markers(tmp_path, "start") == started  # no dropped chunk started later


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_trio_fail_after_with_cancel_kill_terminates_running_workers(
    tmp_path: Path,
) -> None:
    release = tmp_path / "release"  # never created: only a kill ends the running chunks
    items = [(str(tmp_path), str(release), i) for i in range(8)]
    scopes: list[anyio.CancelScope] = []
    outcome: list[Any] = []

    async def run(pool: aiopar.Pool) -> None:
        try:
            with anyio.fail_after(60) as scope:
                scopes.append(scope)
                outcome.append(await pool.amap(faulty.start_then_wait, items, chunksize=1))
        except TimeoutError as exc:
            outcome.append(exc)

    async with aiopar.Pool(workers=2, cancel="kill") as pool:
        async with anyio.create_task_group() as group:
            group.start_soon(run, pool)
            await _until(lambda: len(_markers(tmp_path, "start")) == 2)
            busy = set(pool.worker_pids())
            scopes[0].deadline = anyio.current_time()  # the timeout expires now
        assert len(outcome) == 1 and isinstance(outcome[0], TimeoutError)
        assert not _still_alive(busy)  # the running chunks' workers were terminated
        assert _markers(tmp_path, "end") == set()
        assert len(_markers(tmp_path, "start")) == 2  # the queued chunks never started
        assert await pool.amap(workers.pid, range(4), chunksize=1)  # replaced workers
        assert set(pool.worker_pids()).isdisjoint(busy)


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_trio_gather_cancels_queued_tasks_on_the_first_failure(tmp_path: Path) -> None:
    release = tmp_path / "release"
    release.touch()  # queued tasks would finish at once, if they ever started
    async with aiopar.Pool(workers=1) as pool:
        blocker = pool.submit(faulty.write_pid_then_sleep, (str(tmp_path), 1.0))
        queued = [
            pool.submit(faulty.start_then_wait, (str(tmp_path), str(release), i)) for i in range(3)
        ]

        async def fails_once_the_worker_is_busy() -> None:
            await _until(lambda: bool(_markers(tmp_path, "pid")))
            raise KeyError("first failure")

        with pytest.raises(KeyError, match="first failure"):
            await aiopar.gather(*queued, fails_once_the_worker_is_busy())
        assert isinstance(await blocker, int)
        for ref in queued:
            with pytest.raises(cf.CancelledError):
                await ref
        assert await pool.submit(workers.square, 4) == 16
    assert _markers(tmp_path, "start") == set()


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_trio_move_on_after_around_tree_reduce_leaves_the_pool_working(
    tmp_path: Path,
) -> None:
    release = tmp_path / "release"  # the inputs cannot finish before the timeout
    async with aiopar.Pool(workers=2, cancel="kill") as pool:
        slow = [
            pool.submit(faulty.start_then_wait, (str(tmp_path), str(release), i)) for i in range(4)
        ]
        with anyio.move_on_after(0.3) as scope:
            await pool.tree_reduce(workers.add, slow)
        assert scope.cancelled_caught
        # its input tasks belong to the caller: the reduction's cancellation leaves them be
        release.touch()
        assert await aiopar.gather(*slow) == [0, 1, 2, 3]
        assert await pool.tree_reduce(workers.add, range(10)) == 45


# ── Ctrl-C and the death of the parent ───────────────────────────────────────────────

# A script that runs a long amap (8 chunks of 60 s on two workers), prints "started" and
# its worker pids once both workers exist, and waits. Its first line makes Ctrl-C raise
# KeyboardInterrupt even if the test runner was started with SIGINT ignored (a child
# inherits that), as it would in a terminal.
_LONG_MAP_SCRIPT = {
    "asyncio": """
import asyncio
import signal

import aiopar
from tests import faulty


async def main() -> None:
    async with aiopar.Pool(workers=2) as pool:
        work = asyncio.ensure_future(pool.amap(faulty.sleep_long, [60.0] * 8, chunksize=1))
        while len(pool.worker_pids()) < 2:
            await asyncio.sleep(0.05)
        print("started", *pool.worker_pids(), flush=True)
        await work


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    asyncio.run(main())
""",
    "trio": """
import signal

import trio

import aiopar
from tests import faulty


async def main() -> None:
    async with aiopar.Pool(workers=2) as pool, trio.open_nursery() as nursery:
        nursery.start_soon(pool.amap, faulty.sleep_long, [60.0] * 8)
        while len(pool.worker_pids()) < 2:
            await trio.sleep(0.05)
        print("started", *pool.worker_pids(), flush=True)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    trio.run(main)
""",
}


def _started_pids(proc: subprocess.Popen[str]) -> set[int]:
    words = _first_line(proc).split()
    assert words[0] == "started", words
    pids = {int(word) for word in words[1:]}
    assert len(pids) == 2
    return pids


def test_parent_sigkill_makes_the_workers_exit_on_their_own(tmp_path: Path) -> None:
    with script_process(tmp_path, "parent.py", _LONG_MAP_SCRIPT["asyncio"]) as proc:
        worker_pids = _started_pids(proc)
        helpers = _descendants(proc.pid)  # the workers, the forkserver, the resource tracker
        assert worker_pids <= helpers
        os.kill(proc.pid, signal.SIGKILL)  # the parent alone, as the OOM killer would
        proc.wait(timeout=15)
        left = _still_alive(helpers, within=10.0)
        assert not left, f"processes outlived their SIGKILLed parent: {sorted(left)}"


@pytest.mark.parametrize("runner", ["asyncio", "trio"])
def test_ctrl_c_stops_the_program_and_its_workers_without_a_traceback_per_worker(
    tmp_path: Path, runner: str
) -> None:
    with script_process(tmp_path, "ctrl_c.py", _LONG_MAP_SCRIPT[runner]) as proc:
        worker_pids = _started_pids(proc)
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        try:
            proc.wait(timeout=15)  # a hang guard, not a timing assertion
        except subprocess.TimeoutExpired:
            _, err = kill_group(proc)
            pytest.fail(f"the program was still running 15 s after Ctrl-C; stderr:\n{err}")
        left = _still_alive(worker_pids, within=10.0)
        _, err = kill_group(proc)
        assert not left, f"workers outlived the interrupted program: {sorted(left)}"
        # One report from the program at most (asyncio.run itself prints its
        # KeyboardInterrupt chained to the main task's CancelledError), none per worker.
        assert _reports(err) <= 1, err
        assert "_bootstrap" not in err, err  # no worker process printed a traceback
        assert not re.search(r"^Process \w+-\d+:", err, re.MULTILINE), err


# ── exceptions that cannot cross processes as themselves ─────────────────────────────


@pytest.mark.asyncio
async def test_exception_needing_two_args_from_amap_chunks_arrives_as_remote_error() -> None:
    async with aiopar.Pool(workers=2) as pool:
        with anyio.fail_after(60):  # never a hang
            with pytest.raises(aiopar.RemoteError) as info:
                await pool.amap_chunks(faulty.raise_two_arg, list(range(8)), chunks=2)
    error = info.value
    assert error.type_name == "tests.faulty.TwoArgError"
    assert error.message == "error 42: checksum mismatch"
    assert "in raise_two_arg" in error.remote_traceback
    assert "tests.faulty.TwoArgError: error 42: checksum mismatch" in str(error)
    assert "Worker traceback" in str(error)


@pytest.mark.asyncio
async def test_exception_needing_two_args_in_a_reduction_step_arrives_as_remote_error() -> None:
    async with aiopar.Pool(workers=2) as pool:
        with anyio.fail_after(60):
            with pytest.raises(aiopar.RemoteError) as info:
                await pool.tree_reduce(faulty.add_or_raise_two_arg, range(10))
    assert info.value.type_name == "tests.faulty.TwoArgError"
    assert "sum too large" in info.value.message
    assert "in add_or_raise_two_arg" in info.value.remote_traceback


@pytest.mark.asyncio
async def test_unpicklable_exception_arrives_as_remote_error_from_task_and_chunk() -> None:
    async with aiopar.Pool(workers=2) as pool:
        with anyio.fail_after(60):
            with pytest.raises(aiopar.RemoteError) as from_task:
                await pool.submit(faulty.raise_holds_lock)
            with pytest.raises(aiopar.RemoteError) as from_chunk:
                await pool.amap_chunks(faulty.raise_holds_lock, [1, 2, 3], chunks=3)
            assert await pool.submit(workers.square, 2) == 4
    for error in (from_task.value, from_chunk.value):
        assert error.type_name == "tests.faulty.HoldsLockError"
        assert error.message == "lock held while failing"
        assert "in raise_holds_lock" in error.remote_traceback


@pytest.mark.asyncio
async def test_unpicklable_result_fails_its_call_instead_of_hanging() -> None:
    async with aiopar.Pool(workers=1) as pool:
        with anyio.fail_after(60):
            with pytest.raises(TypeError, match=r"the result of return_lock cannot be pickled"):
                await pool.submit(faulty.return_lock)
            with pytest.raises(TypeError, match=r"the result of return_lock cannot be pickled"):
                await pool.amap(faulty.return_lock, [1, 2])
            assert await pool.submit(workers.square, 3) == 9


# ── bad input: a clear error naming the argument, before any work starts ─────────────

_closure_lock = threading.Lock()

BAD_POOL_OPTIONS: list[Any] = [
    pytest.param({"workers": 0}, ValueError, r"workers must be at least 1, got 0", id="workers=0"),
    pytest.param(
        {"workers": -1}, ValueError, r"workers must be at least 1, got -1", id="workers=-1"
    ),
    pytest.param({"workers": 2.5}, TypeError, r"workers must be a positive int", id="workers=2.5"),
    pytest.param(
        {"max_tasks_per_child": 0},
        ValueError,
        r"max_tasks_per_child must be at least 1",
        id="max_tasks_per_child=0",
    ),
    pytest.param({"retries": -1}, ValueError, r"retries must be an int >= 0", id="retries=-1"),
    pytest.param({"cancel": "abort"}, ValueError, r'cancel must be "wait" or "kill"', id="cancel"),
    pytest.param({"start_method": "fork"}, ValueError, r'start_method="fork"', id="fork"),
    pytest.param(
        {"start_method": "thread"},
        ValueError,
        r"start_method must be one of",
        id="start_method=thread",
    ),
    pytest.param({"initializer": 3}, TypeError, r"initializer must be callable", id="initializer"),
    pytest.param({"initargs": [1]}, TypeError, r"initargs must be a tuple", id="initargs"),
]


@pytest.mark.parametrize(("options", "error", "message"), BAD_POOL_OPTIONS)
def test_bad_pool_options_are_refused_naming_the_option(
    options: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        aiopar.Pool(**options)


def _locked_closure() -> Callable[[int], int]:
    def uses_lock(x: int) -> int:
        with _closure_lock:
            return x

    return uses_lock


BadCall = Callable[[aiopar.Pool], Any]

BAD_CALLS: list[Any] = [
    pytest.param(
        lambda p: p.amap(workers.square, range(3), chunksize=0),
        ValueError,
        r"chunksize must be at least 1, got 0",
        id="amap-chunksize=0",
    ),
    pytest.param(
        lambda p: p.amap(workers.square, range(3), chunksize=-2),
        ValueError,
        r"chunksize must be at least 1, got -2",
        id="amap-chunksize=-2",
    ),
    pytest.param(
        lambda p: p.amap(workers.square, range(3), chunksize=1.5),
        TypeError,
        r"chunksize must be a positive int",
        id="amap-chunksize=1.5",
    ),
    pytest.param(
        lambda p: anext(p.imap(workers.square, range(3), max_inflight=0)),
        ValueError,
        r"max_inflight must be at least 1, got 0",
        id="imap-max_inflight=0",
    ),
    pytest.param(
        lambda p: anext(p.imap(workers.square, range(3), chunksize=-1)),
        ValueError,
        r"chunksize must be at least 1, got -1",
        id="imap-chunksize=-1",
    ),
    pytest.param(
        lambda p: p.amap_chunks(workers.sum_chunk, [1, 2], chunks=0),
        ValueError,
        r"chunks must be at least 1, got 0",
        id="amap_chunks-chunks=0",
    ),
    pytest.param(
        lambda p: p.amap_chunks(workers.sum_chunk, [1, 2], chunksize=-1),
        ValueError,
        r"chunksize must be at least 1, got -1",
        id="amap_chunks-chunksize=-1",
    ),
    pytest.param(
        lambda p: p.amap_chunks(workers.sum_chunk, [1, 2], chunks=2, chunksize=1),
        ValueError,
        r"give chunks .* or chunksize .*, not both",
        id="chunks-and-chunksize",
    ),
    pytest.param(
        lambda p: p.amap_chunks(workers.sum_chunk, [1, 2], combine="sum"),
        ValueError,
        r"combine must be",
        id="amap_chunks-combine",
    ),
    pytest.param(
        lambda p: p.tree_reduce(workers.add, range(3), chunksize=0),
        ValueError,
        r"chunksize must be at least 1, got 0",
        id="tree_reduce-chunksize=0",
    ),
    pytest.param(
        lambda p: p.amap(workers.square, 5),
        TypeError,
        r"items must be an iterable or async iterable, got int",
        id="amap-non-iterable",
    ),
    pytest.param(
        lambda p: p.amap(workers.square, "abc"), TypeError, r"items is a str", id="amap-str-items"
    ),
    pytest.param(
        lambda p: anext(p.imap(workers.square, None)),
        TypeError,
        r"items must be an iterable",
        id="imap-non-iterable",
    ),
    pytest.param(
        lambda p: p.tree_reduce(workers.add, 5),
        TypeError,
        r"items must be an iterable",
        id="tree_reduce-non-iterable",
    ),
    pytest.param(
        lambda p: p.tree_reduce(workers.add, []),
        TypeError,
        r"empty iterable with no initial value",
        id="tree_reduce-empty",
    ),
    pytest.param(
        lambda p: p.amap_chunks(workers.sum_chunk, 5),
        TypeError,
        r"needs a numpy array, a pandas DataFrame/Series or a sequence as data, got int",
        id="amap_chunks-non-sequence",
    ),
    pytest.param(
        lambda p: p.amap(5, [1]),
        TypeError,
        r"func must be callable, got int",
        id="amap-non-callable",
    ),
    pytest.param(
        lambda p: p.submit(None), TypeError, r"func must be callable", id="submit-non-callable"
    ),
    pytest.param(
        lambda p: p.amap(_locked_closure(), [1]),
        TypeError,
        r"func=.*uses_lock cannot be pickled",
        id="amap-unpicklable-func",
    ),
    pytest.param(
        lambda p: p.submit(_locked_closure(), 1),
        TypeError,
        r"func=.*uses_lock cannot be pickled",
        id="submit-unpicklable-func",
    ),
    pytest.param(
        lambda p: p.amap_chunks(_locked_closure(), [1, 2]),
        TypeError,
        r"func=.*uses_lock cannot be pickled",
        id="amap_chunks-unpicklable-func",
    ),
    pytest.param(
        lambda p: p.tree_reduce(_locked_closure(), [1, 2]),
        TypeError,
        r"func=.*uses_lock cannot be pickled",
        id="tree_reduce-unpicklable-func",
    ),
]


async def _call(make: BadCall, pool: aiopar.Pool) -> Any:
    result = make(pool)
    if inspect.isawaitable(result):
        result = await result
    return result


@pytest.mark.asyncio
@pytest.mark.parametrize(("make", "error", "message"), BAD_CALLS)
async def test_bad_call_is_refused_naming_the_argument_before_any_work(
    make: BadCall, error: type[Exception], message: str
) -> None:
    async with aiopar.Pool(workers=1) as pool:
        with pytest.raises(error, match=message):
            await _call(make, pool)
        assert pool.worker_pids() == []  # no worker was even started
        assert await pool.submit(workers.square, 5) == 25


# What aiopar should say for an argument that cannot be pickled: name it.
_POSITIONAL = r"args\[0\]|argument 0\b|argument 1\b|first argument"
_ITEM_1 = r"items\[1\]|item 1\b|item at index 1"

UNPICKLABLE_ARGUMENTS: list[Any] = [
    pytest.param(
        lambda p: p.submit(workers.identity, _closure_lock), _POSITIONAL, id="submit-positional"
    ),
    pytest.param(
        lambda p: p.submit(workers.total, guard=_closure_lock), r"\bguard\b", id="submit-keyword"
    ),
    pytest.param(
        lambda p: p.amap(workers.identity, [1, _closure_lock, 3]), _ITEM_1, id="amap-item"
    ),
    pytest.param(
        lambda p: p.tree_reduce(workers.add, [1, _closure_lock, 2, 3]),
        _ITEM_1,
        id="tree_reduce-item",
    ),
]


@pytest.mark.asyncio
@pytest.mark.parametrize(("make", "names"), UNPICKLABLE_ARGUMENTS)
async def test_unpicklable_argument_is_refused_naming_it(make: BadCall, names: str) -> None:
    async with aiopar.Pool(workers=1) as pool:
        with anyio.fail_after(60):  # never a hang
            with pytest.raises(TypeError, match="pickle") as info:
                await _call(make, pool)
        assert await pool.submit(workers.square, 5) == 25
    assert re.search(names, str(info.value)), (
        f"the error does not name the argument: {type(info.value).__name__}: {info.value}"
    )


@pytest.mark.asyncio
async def test_unpicklable_item_of_a_list_is_refused_before_any_item_runs(tmp_path: Path) -> None:
    log = tmp_path / "runs.log"
    logged = functools.partial(faulty.logged_value, str(log), seconds=0.0)
    async with aiopar.Pool(workers=1) as pool:
        with anyio.fail_after(60):  # never a hang
            with pytest.raises(TypeError, match=r"items\[2\]|item 2\b|item at index 2"):
                await pool.amap(logged, [1, 2, _closure_lock, 4, 5, 6], chunksize=1)
        assert await pool.submit(workers.square, 5) == 25
    ran = log.read_text().split() if log.exists() else []
    assert ran == [], f"items ran although the call was refused: {ran}"


@pytest.mark.parametrize("start_method", ["forkserver", "spawn"])
def test_script_without_main_guard_gets_one_clear_error(tmp_path: Path, start_method: str) -> None:
    body = (
        "import anyio\n"
        "import aiopar\n"
        "from tests import workers\n\n\n"
        "async def main():\n"
        f"    async with aiopar.Pool(workers=1, start_method={start_method!r}) as pool:\n"
        "        print(await pool.amap(workers.square, [1, 2]))\n\n\n"
        "anyio.run(main)\n"
    )
    with script_process(tmp_path, "noguard.py", body) as proc:
        try:
            proc.wait(timeout=60)  # a hang guard
        except subprocess.TimeoutExpired:
            pytest.fail(f"the script hung; stderr:\n{kill_group(proc)[1]}")
        out, err = kill_group(proc)
    assert proc.returncode != 0
    assert out == ""  # no work was done
    assert 'put the code that starts work under `if __name__ == "__main__":` in noguard.py' in err
    assert err.count("Traceback") == 1, err


@contextlib.asynccontextmanager
async def _awaited_in_background(ref: aiopar.TaskRef[Any]) -> AsyncIterator[None]:
    """Await ``ref`` in a task of its own; on leaving, cancel that wait, which stops the
    worker running it on a ``cancel="kill"`` pool."""

    async def wait() -> Any:
        return await ref

    waiter = asyncio.ensure_future(wait())
    try:
        yield
    finally:
        waiter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiter


@pytest.mark.asyncio
async def test_a_worker_deaf_to_sigterm_does_not_stall_the_rebuild(tmp_path: Path) -> None:
    # When one worker crashes, the executor terminates the others with SIGTERM; one
    # that ignores it is killed, and the pool carries on.
    marker = tmp_path / "deaf.pid"
    async with aiopar.Pool(workers=2, cancel="kill") as pool:
        deaf = pool.submit(faulty.deaf_to_sigterm_then_sleep, str(marker), 60.0)
        async with _awaited_in_background(deaf):  # it is sent again after the crash
            while not marker.exists():
                await asyncio.sleep(0.01)
            deaf_pid = int(marker.read_text())
            with pytest.raises(aiopar.WorkerCrashedError):
                await pool.submit(faulty.kill_self)
            assert await pool.submit(workers.square, 6) == 36  # rebuilt, in seconds
            assert not _alive(deaf_pid)


@pytest.mark.asyncio
async def test_a_crash_of_a_worker_started_on_demand_is_noticed_at_once(tmp_path: Path) -> None:
    # The second worker is started for the second job, while the executor's manager
    # thread already waits on the first one; CPython would only watch it after some
    # other job finished (here: after the 20 s sleep).
    async with aiopar.Pool(workers=2, cancel="kill") as pool:
        sleeper = pool.submit(faulty.write_pid_then_sleep, (str(tmp_path), 20.0))
        async with _awaited_in_background(sleeper):
            while not list(tmp_path.iterdir()):  # the sleeper has started
                await asyncio.sleep(0.01)
            assert len(pool.worker_pids()) == 1
            with pytest.raises(aiopar.WorkerCrashedError):
                await pool.submit(faulty.kill_self)
            assert not sleeper.done()  # noticed while the other worker still sleeps
