"""The bench's cluster workloads (``aiopar/bench/cluster.py``, ``workloads/dask_dag.py``,
``workloads/dask_chunks.py``): ``python -m aiopar bench --cluster ADDRESS`` and
``--only dask_dag dask_chunks``, aiopar on a Dask cluster beside hand-written Dask futures.

The command runs in a subprocess, at quick sizes; no timing is asserted, only that the
rows are there, ran, and carry their figures. The verdicts are tested on made-up rows.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aiopar import bench
from aiopar.bench.cluster import DASK_FUTURES, measure_on_cluster, versus
from aiopar.bench.command import main
from aiopar.bench.memory import PeakMemory
from aiopar.bench.rows import Result, Sample
from aiopar.bench.runner import Bench, equal
from aiopar.bench.workloads import CLUSTER_WORKLOADS, EXTRA_WORKLOADS, catalog
from tests.scripts import run_bench

ROOT = Path(__file__).resolve().parent.parent
ROWS = ("sequential", "aiopar", DASK_FUTURES)


@pytest.fixture
def threads_cluster() -> Iterator[str]:
    """A Dask scheduler with one worker of two threads, in this process, on TCP: its
    address. (The separately started ``dask scheduler`` and ``dask worker`` processes
    are tests/test_cluster_address.py's.)"""
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        n_workers=1,
        threads_per_worker=2,
        processes=False,
        protocol="tcp://",
        host="127.0.0.1",
        dashboard_address=":0",  # any free port: 8787 may be taken
    )
    try:
        yield str(cluster.scheduler_address)
    finally:
        cluster.close()


def check_rows(data: dict[str, Any], names: tuple[str, ...]) -> None:
    assert list(data["workloads"]) == list(names)
    for name in names:
        workload = data["workloads"][name]
        rows = {row["contender"]: row for row in workload["rows"]}
        assert sorted(rows) == sorted(ROWS), (name, rows)
        for row in rows.values():
            assert row["status"] == "ok", (name, row)
            assert len(row["runs_s"]) == 1 and row["runs_s"][0] > 0, (name, row)
            assert math.isfinite(row["speedup"]) and row["speedup"] > 0, (name, row)
        ratio = rows["aiopar"]["figures"]["vs_dask_futures"]
        assert ratio == pytest.approx(rows["aiopar"]["median_s"] / rows[DASK_FUTURES]["median_s"])
        assert f"of {DASK_FUTURES}' time" in rows["aiopar"]["note"]
        assert workload["met"] is None  # quick sizes: the bar is not judged


@pytest.mark.timeout(240)
def test_cluster_option_runs_the_cluster_workloads_at_that_address(
    threads_cluster: str, tmp_path: Path
) -> None:
    output = tmp_path / "bench.json"
    done = run_bench(
        "--cluster", threads_cluster, "--quick", "--repeat", "1", "--json", str(output), timeout=200
    )
    assert done.returncode == 0, done.stdout + done.stderr
    data = json.loads(output.read_text())
    check_rows(data, CLUSTER_WORKLOADS)  # both, and nothing else: --only was not given
    assert data["options"]["cluster"] == threads_cluster
    assert f"Dask cluster: {threads_cluster}, 2 worker threads" in done.stdout
    assert "matrix DAG on a Dask cluster, create_matrix(300²) ×2 → multiply" in done.stdout


@pytest.mark.timeout(240)
def test_naming_a_cluster_workload_starts_a_local_cluster_for_the_run(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    output = tmp_path / "bench.json"
    options = ("--only", "dask_chunks", "--quick", "--repeat", "1", "--json", str(output))
    done = run_bench(*options, timeout=200)
    assert done.returncode == 0, done.stdout + done.stderr
    data = json.loads(output.read_text())
    check_rows(data, ("dask_chunks",))
    assert data["options"]["cluster"] == "LocalCluster"
    assert "Dask cluster: a LocalCluster started for the run" in done.stdout
    # the LocalCluster's processes are gone with the bench: the no_leaks fixture checks


def test_cluster_workloads_run_only_when_asked() -> None:
    assert set(CLUSTER_WORKLOADS) <= set(EXTRA_WORKLOADS)
    assert not set(CLUSTER_WORKLOADS) & set(bench.WORKLOADS)


def test_cluster_option_without_a_cluster_workload_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--cluster", "tcp://127.0.0.1:8786", "--only", "vec"])
    assert exit_.value.code == 2
    error = capsys.readouterr().err
    assert "--cluster runs dask_dag and dask_chunks: name one of them with --only" in error


def test_help_lists_the_cluster_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "--cluster ADDRESS" in text
    assert "dask_dag" in text and "dask_chunks" in text


def test_every_row_fails_with_the_reason_when_there_is_no_cluster() -> None:
    class NoCluster:
        def cluster(self) -> Any:
            raise OSError("Timed out trying to connect to tcp://127.0.0.1:1")

    rows = measure_on_cluster(NoCluster(), "dask_dag", lambda session: [], lambda a, b: True)  # type: ignore[arg-type]
    assert [row.contender for row in rows] == list(ROWS)
    for row in rows:
        assert row.status == "failed"
        assert row.note == "no cluster: OSError: Timed out trying to connect to tcp://127.0.0.1:1"


@pytest.mark.parametrize("name", CLUSTER_WORKLOADS)
@pytest.mark.parametrize(("ratio", "met"), [(1.10, True), (0.5, True), (1.11, False)])
def test_cluster_bar_is_within_ten_percent_of_dask_futures(
    name: str, ratio: float, met: bool
) -> None:
    workload = catalog(bench.FULL)[name]
    row = Result(name, "aiopar", runs_s=[1.0], figures={"vs_dask_futures": ratio})
    assert workload.meets(row) is met
    assert workload.meets(Result(name, "aiopar", runs_s=[1.0])) is False  # no baseline


def test_versus_pairs_runs_of_the_same_round() -> None:
    rows = [
        Result("dask_dag", "aiopar", runs_s=[1.0, 3.0, 2.0]),
        Result("dask_dag", DASK_FUTURES, runs_s=[2.0, 2.0, 1.0]),
    ]
    # median of 1/2, 3/2, 2/1, not the ratio of the medians (2/2)
    assert versus(rows, "aiopar", DASK_FUTURES) == pytest.approx(1.5)
    rows[1].runs_s = [2.0, 4.0]  # a failed round: no pairs, the ratio of the medians
    assert versus(rows, "aiopar", DASK_FUTURES) == pytest.approx(2.0 / 3.0)
    rows[1].runs_s = []
    assert versus(rows, "aiopar", DASK_FUTURES) is None


def test_sequential_runs_apart_and_the_cluster_rows_take_turns() -> None:
    # The sequential row is timed in rounds of its own: in rounds of three in turning
    # order, the row after it would always be the same one. The two cluster rows share
    # their rounds, and the aiopar row's figure pairs them.
    calls: list[str] = []

    def entry(name: str, seconds: float) -> Any:
        def run() -> Sample:
            calls.append(name)
            return Sample(seconds, [1])

        return (name, run)

    class Session:
        described = "a test cluster"

    runner = Bench.__new__(Bench)
    runner.repeat, runner.sizes, runner.memory = 2, bench.QUICK, PeakMemory()
    runner._progress, runner.workers = (lambda line: None), 1
    runner._cluster, runner._cluster_failure = Session(), None  # type: ignore[assignment]
    entries = [entry("sequential", 4.0), entry("aiopar", 3.0), entry(DASK_FUTURES, 2.0)]
    rows = measure_on_cluster(runner, "dask_dag", lambda session: entries, equal)
    assert calls == [
        *("sequential",) * 3,  # untimed, then 2 rounds
        *("aiopar", DASK_FUTURES),  # untimed
        *("aiopar", DASK_FUTURES, DASK_FUTURES, "aiopar"),  # 2 rounds, turning
    ]
    by_name = {row.contender: row for row in rows}
    assert by_name["sequential"].in_rounds is False
    assert by_name["aiopar"].figures["vs_dask_futures"] == pytest.approx(1.5)
    assert by_name["aiopar"].note.startswith(f"×1.50 of {DASK_FUTURES}' time")
    assert by_name[DASK_FUTURES].note == "on a test cluster"
