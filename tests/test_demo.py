"""Tests for ``python -m aiopar demo`` (aiopar/demo.py) and the command line (aiopar/__main__.py).

They run the real command in a subprocess, with real worker processes. No timing is
asserted: the machines these run on are shared and noisy, so only the shape of the
output is checked.
"""

from __future__ import annotations

import re
import subprocess
import sys
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


def run_aiopar(*args: str, timeout: float = 170) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aiopar", *args],
        cwd=ROOT,
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
