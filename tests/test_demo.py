"""Tests for ``python -m aiopar demo`` (the package aiopar/demo/) and the command line
(aiopar/__main__.py).

They run the real command in a subprocess, with real worker processes. No timing is
asserted: the machines these run on are shared and noisy, so only the shape of the
output is checked.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

ROW_NAMES = (
    "sleep tasks (remote + gather)",
    "matrix task graph (submit)",
    "chain of adds (TaskRefs)",
    "tree of adds (tree_reduce)",
    "array chunks (amap_chunks)",
    "amap beside a 1 ms ticker",
)

NUMBER = r"(\d+(?:\.\d+)?)"


def run_aiopar(
    *args: str, timeout: float = 170, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aiopar", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_row_names_match_the_demo() -> None:
    from aiopar import demo

    assert demo.ROW_NAMES == ROW_NAMES


@pytest.mark.timeout(180)
@pytest.mark.parametrize("backend", ["asyncio", "trio", "uvloop"])
def test_quick_demo_prints_every_row_with_a_speedup(backend: str) -> None:
    if backend == "uvloop":
        pytest.importorskip("uvloop")
    result = run_aiopar("demo", "--quick", "--backend", backend)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    for name in ROW_NAMES:
        row = re.compile(rf"^{re.escape(name)}\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}x\s")
        matches = [m for m in map(row.match, lines) if m]
        assert len(matches) == 1, f"no single row {name!r} in:\n{result.stdout}"
        sequential_s, aiopar_s, speedup = (float(g) for g in matches[0].groups())
        assert sequential_s > 0 and aiopar_s > 0 and speedup > 0
        line = matches[0].string
        if speedup < 1.0:  # a slowdown is never shown without its reason
            assert "; slower: " in line, line
        else:
            assert "slower" not in line, line
    positions = [result.stdout.index(name) for name in ROW_NAMES]
    assert positions == sorted(positions), "rows out of order"
    assert re.search(rf"^demo finished in {NUMBER} s$", result.stdout, re.MULTILINE)


@pytest.mark.timeout(180)
def test_unknown_command_exits_non_zero_with_usage() -> None:
    result = run_aiopar("nonsense", timeout=60)
    assert result.returncode != 0
    assert "usage:" in result.stderr
    assert "nonsense" in result.stderr
    assert "demo" in result.stderr


@pytest.mark.timeout(180)
def test_no_command_exits_non_zero_with_usage() -> None:
    result = run_aiopar(timeout=60)
    assert result.returncode != 0
    assert "usage:" in result.stderr


@pytest.mark.timeout(180)
def test_demo_rejects_unknown_backend() -> None:
    result = run_aiopar("demo", "--backend", "nonsense", timeout=60)
    assert result.returncode != 0
    assert "usage: python -m aiopar demo" in result.stderr


@pytest.mark.timeout(180)
def test_demo_help_lists_its_options() -> None:
    result = run_aiopar("demo", "--help", timeout=60)
    assert result.returncode == 0, result.stderr
    assert "--quick" in result.stdout and "--backend" in result.stdout


def row(name: str, sequential_s: float, aiopar_s: float, others: float | None = None) -> str:
    from aiopar.demo import table

    return table.format_row(table.Row(name, sequential_s, aiopar_s, "notes", others))


def test_a_faster_row_has_no_reason() -> None:
    for name in ROW_NAMES:
        assert row(name, 1.0, 0.5).endswith("  notes"), name
    assert "slower" not in row(ROW_NAMES[1], 1.0, 1.004)  # printed as 1.00x


def test_a_slower_row_says_why_next_to_it() -> None:
    # by nature: the matrix graph (numpy already uses every core), the chain (sequential)
    assert "; slower: numpy already runs the multiply on every core" in row(ROW_NAMES[1], 1, 2)
    assert "; slower: each add waits for the one before" in row(ROW_NAMES[2], 1, 2)
    # by the machine: other processes took the CPUs while aiopar ran
    busy = row(ROW_NAMES[4], 0.65, 1.0, others=0.4)
    assert busy.endswith("notes; slower: other processes used 40% of the CPUs while aiopar ran")
    # and without a busy machine to blame, the cost of the trips
    for others in (None, 0.05):
        quiet = row(ROW_NAMES[4], 0.65, 1.0, others=others)
        assert "; slower: at these sizes, starting the tasks and moving their data" in quiet


def test_the_load_line_shows_only_when_other_processes_use_the_cpus() -> None:
    from aiopar.demo import table

    assert table.load_line(None, 2) == ""
    assert table.load_line(0.05, 2) == ""
    line = table.load_line(0.6, 2)
    assert line.startswith("machine load: other processes used 60% of the 2 CPUs during the demo")


def test_cpu_watch_counts_only_other_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    from aiopar import _load

    # machine busy seconds, our tree's seconds: 2 s busy in 1 s on 2 CPUs, 1 s of it ours
    readings = iter([(10.0, 2.0), (12.0, 3.0)])
    clock = iter([100.0, 101.0])
    monkeypatch.setattr(_load, "_cpu_seconds", lambda: next(readings))
    monkeypatch.setattr(_load.time, "perf_counter", lambda: next(clock))
    monkeypatch.setattr(_load.os, "cpu_count", lambda: 2)
    assert _load.CpuWatch().others() == pytest.approx(0.5)


def test_cpu_watch_reads_this_machine() -> None:
    from aiopar._load import CpuWatch

    if not os.path.exists("/proc/stat"):
        pytest.skip("CpuWatch reads /proc")
    watch = CpuWatch()
    end = time.perf_counter() + 0.3
    while time.perf_counter() < end:  # busy, and ours: not counted as other processes'
        pass
    others = watch.others()
    assert others is not None and 0.0 <= others <= 1.0


@pytest.mark.timeout(180)
def test_quick_mode_from_the_environment() -> None:
    env = {**os.environ, "AIOPAR_DEMO_QUICK": "1"}
    result = run_aiopar("demo", "--backend", "asyncio", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[0].endswith(", quick sizes")


@pytest.mark.timeout(60)
def test_a_backend_that_is_not_installed_is_refused_with_the_fix(tmp_path: Path) -> None:
    # uvloop is installed here: hide it (None in sys.modules means "cannot be imported")
    (tmp_path / "sitecustomize.py").write_text("import sys\nsys.modules['uvloop'] = None\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    result = run_aiopar("demo", "--backend", "uvloop", timeout=50, env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "--backend uvloop needs uvloop: pip install uvloop" in result.stderr
    assert "Traceback" not in result.stderr
