"""aiopar's pytest plugin, run on small sample suites in a fresh ``python -m pytest``.

Each test writes a suite into a temporary folder and runs it in a subprocess, as a
user's project would run: pytest-asyncio in strict and auto mode, anyio on asyncio and
trio, pytest-xdist, the in-process mode with a debugger hook, the leak check, and
coverage of lines that run only in workers. The runs are few and small (one or two
workers each): together they take about half a minute.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

WORK = """
import os


def pid_of(_=None):
    return os.getpid()


def stop_here(x):
    breakpoint()
    return x + 1


def double_rows(block):
    return block * 2  # runs only where the job runs
"""

CONFIG = """
[tool.pytest.ini_options]
asyncio_default_fixture_loop_scope = "function"
"""


def run_suite(
    folder: Path, files: dict[str, str], *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Write ``files`` into ``folder`` and run ``python -m pytest`` there, warnings as
    errors, without the environment of this test run leaking in."""
    files = {"work.py": WORK, "pyproject.toml": CONFIG, **files}
    for name, text in files.items():
        (folder / name).write_text(textwrap.dedent(text).lstrip())
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYTEST_", "AIOPAR_", "COV_", "COVERAGE_"))
    }
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-W", "error", "-p", "no:cacheprovider", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def report(done: subprocess.CompletedProcess[str]) -> str:
    return f"exit code {done.returncode}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"


def recorded_pids(path: Path) -> list[set[int]]:
    return [{int(pid) for pid in line.split()} for line in path.read_text().splitlines()]


def assert_gone(pids: set[int]) -> None:
    """The processes ``pids`` have exited (the session's pool was closed)."""
    deadline = time.monotonic() + 10
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = {pid for pid in alive if psutil.pid_exists(pid) and _not_zombie(pid)}
        time.sleep(0.05)
    assert not alive, f"workers still running after the session: {alive}"


def _not_zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


LOOPS_SUITE = """
import os
import pathlib

import pytest

import work

LOG = pathlib.Path(__file__).with_name("pids.txt")


async def record(pool):
    pids = await pool.amap(work.pid_of, range(6), chunksize=1)
    assert os.getpid() not in pids
    with LOG.open("a") as log:
        log.write(" ".join(str(pid) for pid in sorted(set(pids))) + "\\n")


@pytest.mark.asyncio
async def test_function_loop(aiopar_pool):
    await record(aiopar_pool)


@pytest.mark.asyncio(loop_scope="module")
async def test_module_loop(aiopar_pool):
    await record(aiopar_pool)


@pytest.mark.asyncio(loop_scope="session")
async def test_session_loop(aiopar_pool):
    await record(aiopar_pool)


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_anyio(aiopar_pool, anyio_backend):
    await record(aiopar_pool)
"""


@pytest.mark.timeout(120)
def test_one_pool_serves_every_loop_and_backend_and_closes(tmp_path: Path) -> None:
    done = run_suite(tmp_path, {"test_loops.py": LOOPS_SUITE}, "--aiopar-workers", "2")
    assert done.returncode == 0, report(done)
    assert "5 passed" in done.stdout, report(done)
    runs = recorded_pids(tmp_path / "pids.txt")
    workers = set().union(*runs)
    assert len(runs) == 5
    assert len(workers) <= 2  # the same two workers served all five tests
    assert_gone(workers)


AUTO_SUITE = """
import pytest

import work


async def test_unmarked(aiopar_pool):
    assert await aiopar_pool.amap(work.double_rows, [1, 2]) == [2, 4]


@pytest.mark.asyncio(loop_scope="module")
async def test_on_a_module_loop(aiopar_pool):
    assert await aiopar_pool.submit(work.double_rows, 5) == 10
"""


@pytest.mark.timeout(120)
def test_auto_mode(tmp_path: Path) -> None:
    done = run_suite(
        tmp_path, {"test_auto.py": AUTO_SUITE}, "-o", "asyncio_mode=auto", "--aiopar-workers=1"
    )
    assert done.returncode == 0, report(done)
    assert "2 passed" in done.stdout, report(done)


PLAIN_SUITE = """
import asyncio

import pytest


@pytest.fixture
def value():
    return 2


@pytest.mark.asyncio
async def test_plain(value):
    await asyncio.sleep(0)
    assert value == 2
"""


@pytest.mark.timeout(120)
def test_a_suite_that_does_not_use_it_sees_no_change(tmp_path: Path) -> None:
    plan = run_suite(tmp_path, {"test_plain.py": PLAIN_SUITE}, "--setup-plan")
    assert plan.returncode == 0, report(plan)
    assert "SETUP    F value" in plan.stdout, report(plan)  # the fixtures each test sets up
    assert "aiopar" not in plan.stdout + plan.stderr, report(plan)  # none of ours


XDIST_SUITE = """
import os
import pathlib

import numpy as np
import pytest

import work

pytestmark = pytest.mark.aiopar_no_leaks


@pytest.mark.parametrize("n", range(6))
@pytest.mark.asyncio
async def test_arrays_through_shared_memory(aiopar_pool, n):
    block = np.full((512, 1024), n, dtype=np.float64)  # 4 MiB: through shared memory
    doubled = await aiopar_pool.amap_chunks(work.double_rows, block, chunks=2)
    assert (doubled == 2 * n).all()
    pids = await aiopar_pool.amap(work.pid_of, range(4), chunksize=1)
    line = [os.environ["PYTEST_XDIST_WORKER"], os.getpid(), *sorted(set(pids))]
    with pathlib.Path(__file__).with_name("runs.txt").open("a") as log:
        log.write(" ".join(str(part) for part in line) + "\\n")
"""


@pytest.mark.timeout(180)
def test_xdist_workers_have_their_own_pools_and_leave_nothing(tmp_path: Path) -> None:
    before = set(os.listdir("/dev/shm"))
    done = run_suite(tmp_path, {"test_xdist.py": XDIST_SUITE}, "-n", "2", "--aiopar-workers=1")
    assert done.returncode == 0, report(done)
    assert "6 passed" in done.stdout, report(done)
    pools: dict[str, tuple[int, set[int]]] = {}
    for line in (tmp_path / "runs.txt").read_text().splitlines():
        name, pid, *workers = line.split()
        owner, seen = pools.setdefault(name, (int(pid), set()))
        assert owner == int(pid)
        seen.update(int(worker) for worker in workers)
    assert sorted(pools) == ["gw0", "gw1"]
    (pid0, workers0), (pid1, workers1) = pools.values()
    assert pid0 != pid1
    assert not workers0 & workers1  # each xdist worker its own pool
    assert_gone(workers0 | workers1)
    made_by_them = {pid0, pid1} | workers0 | workers1
    left = [
        name
        for name in set(os.listdir("/dev/shm")) - before
        if name.startswith("aiopar-") and int(name.split("-")[2]) in made_by_them
    ]
    assert not left


INLINE_SUITE = """
import asyncio
import os
import sys

import aiopar
import work


def test_a_breakpoint_in_a_task_stops_in_the_test_process(aiopar_pool, monkeypatch):
    stops = []
    monkeypatch.setattr(sys, "breakpointhook", lambda *a, **k: stops.append(os.getpid()))
    assert asyncio.run(aiopar_pool.amap(work.stop_here, [1, 2])) == [2, 3]
    assert stops == [os.getpid(), os.getpid()]
    assert aiopar_pool.worker_pids() == []


def test_the_default_pool_runs_inline_too():
    assert asyncio.run(aiopar.amap(work.pid_of, range(3))) == [os.getpid()] * 3
    assert aiopar.get_default_pool().inline is True


def test_worker_code(aiopar_pool):
    async def main():
        return await aiopar_pool.submit(work.double_rows, 4)

    assert asyncio.run(main()) == 8
"""


@pytest.mark.timeout(120)
def test_inline_mode_debugger_and_coverage(tmp_path: Path) -> None:
    done = run_suite(
        tmp_path,
        {"test_inline.py": INLINE_SUITE},
        "--aiopar-inline",
        "--cov=work",
        "--cov-report=term-missing",
    )
    assert done.returncode == 0, report(done)
    assert "3 passed" in done.stdout, report(done)
    assert re.search(r"^work\.py\s+\d+\s+0\s+100%", done.stdout, re.M), report(done)


COVERAGE_CONFIG = (
    CONFIG
    + """
[tool.coverage.run]
patch = ["subprocess", "fork", "_exit"]
parallel = true
"""
)

WORKER_SUITE = """
import os

import pytest

import aiopar
import work


@pytest.mark.asyncio
async def test_in_forkserver_workers(aiopar_pool):
    assert aiopar_pool.start_method == "forkserver"
    assert await aiopar_pool.amap(work.double_rows, [1, 2]) == [2, 4]


@pytest.mark.asyncio
async def test_in_spawn_workers():
    async with aiopar.Pool(workers=1, start_method="spawn") as pool:
        assert await pool.submit(work.pid_of) != os.getpid()
"""


@pytest.mark.timeout(120)
def test_coverage_counts_lines_run_in_worker_processes(tmp_path: Path) -> None:
    done = run_suite(
        tmp_path,
        {"test_workers.py": WORKER_SUITE, "pyproject.toml": COVERAGE_CONFIG},
        "--aiopar-start-method=forkserver",
        "--aiopar-workers=1",
        "--cov=work",
        "--cov-report=term-missing",
    )
    assert done.returncode == 0, report(done)
    # double_rows ran only in a forkserver worker, pid_of only in a spawn worker;
    # stop_here never ran.
    line = re.search(r"^work\.py\s+\d+\s+(\d+)\s+\d+%\s+(.*)$", done.stdout, re.M)
    assert line is not None, report(done)
    assert line.group(2).strip() == "9-10", report(done)


LEAK_SUITE = """
import os
from multiprocessing import shared_memory

import pytest

import aiopar
import work

kept = []


@pytest.mark.aiopar_no_leaks
@pytest.mark.asyncio
async def test_leaves_a_pool_open():
    pool = aiopar.Pool(workers=1)
    pool.open()
    kept.append(pool)
    assert await pool.submit(work.pid_of) != os.getpid()


@pytest.mark.aiopar_no_leaks
def test_leaves_a_segment():
    segment = shared_memory.SharedMemory(f"aiopar-leak-{os.getpid()}-1", create=True, size=64)
    kept.append(segment)


@pytest.mark.aiopar_no_leaks
@pytest.mark.asyncio
async def test_clean(aiopar_pool):
    async with aiopar.Pool(workers=1) as pool:
        assert await pool.submit(work.pid_of) != os.getpid()
    assert await aiopar_pool.submit(work.pid_of) != os.getpid()


def test_not_checked():
    kept.append(aiopar.Pool(workers=1, inline=True))
    kept[-1].open()


def teardown_module():
    for thing in kept:
        if isinstance(thing, aiopar.Pool):
            thing.close()
        else:
            thing.close()
            thing.unlink()
"""


def teardown_errors(output: str) -> dict[str, str]:
    """The text of each "ERROR at teardown of <test>" section of a pytest report."""
    sections = re.split(r"^_+ ERROR at teardown of (\w+) _+$", output, flags=re.M)
    return dict(zip(sections[1::2], sections[2::2], strict=True))


@pytest.mark.timeout(120)
def test_the_leak_check_fails_tests_that_leave_things_behind(tmp_path: Path) -> None:
    done = run_suite(tmp_path, {"test_leaks.py": LEAK_SUITE}, "--aiopar-workers=1")
    assert "4 passed, 2 errors" in done.stdout, report(done)
    errors = teardown_errors(done.stdout)
    assert sorted(errors) == ["test_leaves_a_pool_open", "test_leaves_a_segment"], report(done)
    assert "pools left open: <aiopar.Pool workers=1" in errors["test_leaves_a_pool_open"]
    assert "child processes left running: pid" in errors["test_leaves_a_pool_open"]
    assert "in /dev/shm: aiopar-leak-" in errors["test_leaves_a_segment"]
    every = run_suite(tmp_path, {}, "--aiopar-no-leaks", "-k", "not_checked")
    errors = teardown_errors(every.stdout)
    assert list(errors) == ["test_not_checked"], report(every)
    assert "pools left open: <aiopar.Pool workers=1 inline=True" in errors["test_not_checked"]
