"""The benchmark's test-suite workload (``aiopar/bench/workloads/test_suite.py``): a pytest-asyncio
suite run on the plugin's session pool and on a pool per test, as
``python -m aiopar bench --only test_suite`` reports it. No timing is asserted: the
rows must be there, with their runs and a ratio."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.scripts import run_bench

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(300)
def test_the_test_suite_row_compares_session_and_per_test_pools(tmp_path: Path) -> None:
    output = tmp_path / "bench.json"
    options = ["--only", "test_suite", "--quick", "--repeat", "1", "--json", str(output)]
    done = run_bench(*options, timeout=280)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "5 async tests, session pool vs a pool per test" in done.stdout
    data = json.loads(output.read_text())
    assert list(data["workloads"]) == ["test_suite"]
    rows = {row["contender"]: row for row in data["workloads"]["test_suite"]["rows"]}
    assert sorted(rows) == ["Pool per test", "aiopar"]
    for row in rows.values():
        assert row["status"] == "ok", row
        assert len(row["runs_s"]) == 1 and row["runs_s"][0] > 0, row
        assert math.isfinite(row["speedup"]) and row["speedup"] > 0, row
    assert rows["aiopar"]["met"] is None  # quick sizes: the bar is not judged
