"""Workload ``test_suite``: an async test suite with one pool for the session versus a
new pool in every test; run only when named (``--only test_suite``).

:func:`run` writes a pytest-asyncio suite of ``tests`` tests into a temporary folder,
each test awaiting a little aiopar work, and runs it with ``python -m pytest`` in a
subprocess two ways: every test on the ``aiopar_pool`` fixture of aiopar's pytest
plugin (workers start once), and every test on a pool of its own (workers start and
stop in every test). It returns the wall-clock seconds of each run. Everything here
runs in the bench's main thread, blocking (the suites run in subprocesses).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..rows import Result, Workload, at_least
from ..runner import Bench
from ..sizes import Sizes

__all__ = ["VARIANTS", "SuiteFailed", "run", "run_suites", "workload"]

#: The two ways the suite runs: its name in the results, and the fixture it uses.
VARIANTS = ("session", "per_test")

_WORK = '''
def burn(n):
    """About a millisecond of pure Python per 20 000."""
    total = 0
    for i in range(n):
        total += i * i % 7
    return total
'''

_TESTS = """
import pytest

import work

ITEMS = [20_000] * 8


@pytest.mark.parametrize("case", range({tests}))
@pytest.mark.asyncio
async def test_case(pool, case):
    assert await pool.amap(work.burn, ITEMS, chunksize=1) == [work.burn(20_000)] * 8
"""

_SESSION = """
import pytest


@pytest.fixture
def pool(aiopar_pool):
    return aiopar_pool  # the plugin's: one pool for the whole session
"""

_PER_TEST = """
import pytest

import aiopar


@pytest.fixture
def pool():
    pool = aiopar.Pool({workers})  # a pool of its own for every test
    pool.open()
    yield pool
    pool.close()
"""

_CONFIG = """
[tool.pytest.ini_options]
asyncio_mode = "strict"
asyncio_default_fixture_loop_scope = "function"
"""


class SuiteFailed(RuntimeError):
    """The sample suite did not pass: its output says why."""


def _write(folder: Path, variant: str, tests: int, workers: int) -> None:
    folder.mkdir()
    (folder / "work.py").write_text(_WORK.lstrip())
    (folder / "test_suite.py").write_text(_TESTS.lstrip().replace("{tests}", str(tests)))
    (folder / "pyproject.toml").write_text(_CONFIG.lstrip())
    conftest = _SESSION if variant == "session" else _PER_TEST.replace("{workers}", str(workers))
    (folder / "conftest.py").write_text(conftest.lstrip())


def _run_once(folder: Path, tests: int, workers: int, timeout: float) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "AIOPAR_"))}
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        f"--aiopar-workers={workers}",
    ]
    start = time.perf_counter()
    done = subprocess.run(
        command, cwd=folder, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0 or f"{tests} passed" not in done.stdout:
        raise SuiteFailed(
            f"the {folder.name} suite failed (exit code {done.returncode}):\n"
            f"{done.stdout[-2000:]}{done.stderr[-2000:]}"
        )
    return seconds


def run_suites(
    tests: int = 50, workers: int = 2, repeat: int = 1, timeout: float = 300
) -> dict[str, list[float]]:
    """Run the suite ``repeat`` times each way, alternating; return the seconds of each
    run by variant (see :data:`VARIANTS`).

    Args:
        tests: how many tests the suite has; each awaits one ``amap`` of 8 small jobs.
        workers: the workers of each pool.
        repeat: timed runs per variant (each after one untimed run, which warms the
            disk cache and checks that the suite passes).
        timeout: seconds one pytest run may take.

    Raises:
        SuiteFailed: when a run does not pass.
    """
    timings: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="aiopar-bench-suite-") as tmp:
        folders = {variant: Path(tmp) / variant for variant in VARIANTS}
        for variant, folder in folders.items():
            _write(folder, variant, tests, workers)
            _run_once(folder, tests, workers, timeout)
        for round_ in range(repeat):
            order = VARIANTS if round_ % 2 == 0 else VARIANTS[::-1]
            for variant in order:
                timings[variant].append(_run_once(folders[variant], tests, workers, timeout))
    return timings


# --- the workload -----------------------------------------------------------------------


def workload(sizes: Sizes) -> Workload:
    """Title, description and bar of ``test_suite`` at these sizes."""
    tests = sizes.suite_tests
    return Workload(
        "test_suite",
        f"{tests} async tests, session pool vs a pool per test",
        f"python -m pytest on a pytest-asyncio suite of {tests} tests, each awaiting"
        " amap(burn, 8 items of ~1 ms): every test on the plugin's aiopar_pool fixture"
        " ('aiopar') or on a Pool of its own ('Pool per test'); wall-clock seconds of"
        " the whole pytest run, interpreter start included",
        "≥ ×2",
        at_least(2.0),
    )


def run(bench: Bench) -> list[Result]:
    """The rows: the session pool as "aiopar", its speedup the per-test pool's time over
    its own (paired by round)."""
    session = Result("test_suite", "aiopar", note="the aiopar_pool fixture: workers start once")
    per_test = Result("test_suite", "Pool per test", note="workers start and stop in each test")
    try:
        timings = run_suites(
            tests=bench.sizes.suite_tests, workers=bench.workers, repeat=bench.repeat
        )
    except (SuiteFailed, OSError, subprocess.TimeoutExpired) as exc:
        for row in (session, per_test):
            row.status, row.note = "failed", f"{type(exc).__name__}: {str(exc)[:200]}"
        return [session, per_test]
    session.runs_s, per_test.runs_s = timings["session"], timings["per_test"]
    session.speedup = statistics.median(
        slow / fast for slow, fast in zip(per_test.runs_s, session.runs_s, strict=True)
    )
    per_test.speedup = 1.0
    return [session, per_test]
