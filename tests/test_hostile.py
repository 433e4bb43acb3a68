"""Hostile tasks and every way out of a program (issue 11 of the fault suite).

Each test stands for one guarantee of docs/reliability.md ("Hostile tasks"): a task that
raises SystemExit, a result the caller cannot rebuild, an endless ``imap``, leaving the
program with work queued, a task that leaves threads or children behind, an initializer
that never returns, ``os.fork()`` after the pool started, and what ``shutdown()`` says
to the calls it cancels. Programs that must exit are run as subprocesses with a timeout.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import psutil
import pytest

import aiopar
from tests import faulty, workers

REPO = Path(__file__).resolve().parent.parent


def _run_script(
    tmp_path: Path, body: str, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """Run ``body`` as a script in its own session; SIGKILL its process group after
    ``timeout`` seconds (the test then fails on the returned code, -9)."""
    script = tmp_path / "script.py"
    script.write_text(f"import sys\nsys.path.insert(0, {str(REPO)!r})\n{body}")
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        cwd=tmp_path,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # whatever the script left behind
        except ProcessLookupError:
            pass
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


# ── 3. SystemExit, KeyboardInterrupt... in a task are that task's error ─────────────


@pytest.mark.asyncio
@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", ["SystemExit", "KeyboardInterrupt", "GeneratorExit"])
async def test_base_exception_in_a_task_is_that_tasks_error_under_gather(name: str) -> None:
    async with aiopar.Pool(2) as pool:
        pids = set(await pool.amap(workers.pid, range(4), chunksize=1))
        bad = pool.submit(faulty.raise_base, name)
        good = pool.submit(workers.square, 7)
        results = await asyncio.gather(bad, good, return_exceptions=True)
        assert isinstance(results[0], aiopar.TaskExited), results
        assert results[0].type_name == name
        assert name in str(results[0]) and "raise_base" in str(results[0])
        assert results[1] == 49
        with pytest.raises(aiopar.TaskExited):
            await asyncio.wait_for(pool.submit(faulty.raise_base, name), 30)
        # The workers live on: nothing was killed.
        assert set(pool.worker_pids()) == pids or pids <= set(pool.worker_pids())


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_sys_exit_in_a_task_carries_its_code_and_does_not_end_the_caller() -> None:
    async with aiopar.Pool(2) as pool:
        with pytest.raises(aiopar.TaskExited) as info:
            await asyncio.wait_for(pool.submit(faulty.exit_with, 3), 30)
        assert info.value.code == 3
        assert "SystemExit(3)" in str(info.value)
        assert isinstance(info.value, Exception)
        assert await pool.submit(workers.square, 3) == 9


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_sys_exit_in_an_amap_chunk_fails_the_call_without_killing_other_chunks() -> None:
    async with aiopar.Pool(2) as pool:
        before = set(await pool.amap(workers.pid, range(4), chunksize=1))
        with pytest.raises(aiopar.TaskExited) as info:
            await pool.amap(faulty.exit_on_item, range(40), chunksize=2)
        assert info.value.code == 7
        # No worker was killed for it (a KeyboardInterrupt would have meant: kill).
        assert set(pool.worker_pids()) == before
        assert await pool.amap(workers.square, range(5)) == [0, 1, 4, 9, 16]


@pytest.mark.anyio
@pytest.mark.timeout(60)
@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_keyboard_interrupt_in_a_task_is_that_tasks_error_on_trio() -> None:
    async with aiopar.Pool(2) as pool:
        with pytest.raises(aiopar.TaskExited) as info:
            await pool.submit(faulty.raise_base, "KeyboardInterrupt")
        assert info.value.type_name == "KeyboardInterrupt"
        with pytest.raises(aiopar.TaskExited):
            await pool.amap(faulty.exit_on_item, range(10), chunksize=2)
        assert await pool.submit(workers.square, 4) == 16


# ── 2. a result the caller cannot rebuild fails that call alone ─────────────────────


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_result_that_cannot_be_rebuilt_fails_only_its_call_and_runs_once(
    tmp_path: Path,
) -> None:
    log = tmp_path / "runs"
    async with aiopar.Pool(2) as pool:
        before = set(await pool.amap(workers.pid, range(4), chunksize=1))
        beside = asyncio.ensure_future(pool.amap(workers.sleep_then, range(6), chunksize=1))
        with pytest.raises(aiopar.ResultLoadError) as info:
            await pool.submit(faulty.only_in_its_process, 1, str(log))
        assert isinstance(info.value.__cause__, LookupError)
        assert "only_in_its_process" in str(info.value)
        assert "LookupError" in str(info.value)
        assert await beside == list(range(6))
        assert log.read_text().count("run") == 1  # not run again
        assert set(pool.worker_pids()) == before  # no worker was blamed or replaced
        assert await pool.submit(workers.square, 5) == 25


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_map_chunk_result_that_cannot_be_rebuilt_names_the_chunk() -> None:
    async with aiopar.Pool(2) as pool:
        with pytest.raises(aiopar.ResultLoadError, match=r"chunk \d+ of amap"):
            await pool.amap(faulty.only_in_its_process_on, range(20), chunksize=2)
        assert await pool.amap(workers.square, range(3)) == [0, 1, 4]


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_result_with_a_big_array_that_cannot_be_rebuilt_leaks_no_segment() -> None:
    async with aiopar.Pool(2) as pool:
        with pytest.raises(aiopar.ResultLoadError):
            await pool.submit(_pair_with_array, 1 << 21)
        assert (await pool.submit(workers.make_matrix, 600)).shape == (600, 600)


def _pair_with_array(nbytes: int) -> tuple[object, object]:
    return (np.ones(nbytes // 8), faulty.OnlyInItsProcess(2))


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_exception_that_cannot_be_rebuilt_in_the_caller_arrives_as_remote_error() -> None:
    async with aiopar.Pool(2) as pool:
        with pytest.raises(aiopar.RemoteError, match="RebuiltOnlyHereError") as info:
            await pool.submit(faulty.raise_rebuilt_only_here)
        assert "LookupError" in str(info.value)
        assert await pool.submit(workers.square, 2) == 4
