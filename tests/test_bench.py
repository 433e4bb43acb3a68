"""Tests for ``python -m aiopar bench`` (the package aiopar/bench/).

One quick run of the real command, in a subprocess with real worker processes, is
shared by the tests that check its output. No timing is asserted: the machines these
run on are shared and noisy, so only the shape of the output is checked. The table and
the verdicts are also tested on made-up results, without any process.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from typing import Any

import pytest

from aiopar import bench
from aiopar.bench import peers
from aiopar.bench.memory import PeakMemory
from aiopar.bench.report import format_markdown, format_table, judge, to_json
from aiopar.bench.rows import Result, Sample, Workload
from aiopar.bench.runner import Bench, equal
from aiopar.bench.workloads import catalog, tiny_graph
from aiopar.bench.workloads.py_tasks import BareProcesses, against_ceiling, py_work
from aiopar.bench.workloads.tiny_tasks import double
from tests.scripts import run_bench

ROOT = Path(__file__).resolve().parent.parent

WORKLOADS = (
    "vec",
    "vec_heavy",
    "loop_lag",
    "matrix_dag",
    "py_tasks",
    "put",
    "tiny_tasks",
    "tiny_graph",
    "tiny_map",
    "cold_start",
)
CORE_ROWS = ("sequential", "aiopar", "run_in_executor")
THIRD_PARTY = {
    "joblib": "joblib",
    "ray": "ray",
    "dask": "distributed",
    "mpire": "mpire",
    "aiomultiprocess": "aiomultiprocess",
}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One ``bench --quick --repeat 1`` run writing JSON and Markdown; its outputs."""
    folder = tmp_path_factory.mktemp("bench")
    json_path, markdown_path = folder / "bench.json", folder / "bench.md"
    result = run_bench(
        "--quick", "--repeat", "1", "--json", str(json_path), "--markdown", str(markdown_path)
    )
    return {
        "result": result,
        "json": json.loads(json_path.read_text()) if json_path.exists() else None,
        "markdown": markdown_path.read_text() if markdown_path.exists() else None,
    }


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def test_workload_names_are_the_documented_ones() -> None:
    assert bench.WORKLOADS == WORKLOADS
    assert set(bench.THIRD_PARTY) == set(THIRD_PARTY)


@pytest.mark.timeout(180)
def test_quick_run_exits_zero_and_prints_one_table(quick_run: dict[str, Any]) -> None:
    result = quick_run["result"]
    assert result.returncode == 0, result.stdout + result.stderr
    header = next(line for line in result.stdout.splitlines() if line.startswith("workload"))
    for column in ("contender", "median s", "speedup", "bar", "met?"):
        assert column in header
    for contender in CORE_ROWS:
        assert contender in result.stdout
    assert "Finished in" in result.stdout
    met_column = header.index("met?")
    contender_column = header.index("contender")
    # the rows the bars apply to ("aiopar", "aiopar submit"; not "aiopar no put")
    aiopar_rows = [
        line
        for line in result.stdout.splitlines()
        if line[contender_column:].split("  ")[0].strip() in bench.AIOPAR_ROWS
    ]
    assert aiopar_rows, result.stdout
    for line in aiopar_rows:
        assert "n/a (quick sizes)" in line, line
        assert line[met_column : met_column + 4].strip() not in ("no", "yes"), line
    assert "bars hold for the full sizes and are not judged" in result.stdout


@pytest.mark.timeout(180)
def test_quick_run_json_has_every_workload_with_numbers(quick_run: dict[str, Any]) -> None:
    data = quick_run["json"]
    assert data is not None, quick_run["result"].stderr
    assert set(data["workloads"]) == set(WORKLOADS)
    for name, workload in data["workloads"].items():
        rows = {row["contender"]: row for row in workload["rows"]}
        for contender in CORE_ROWS:
            row = rows[contender]
            assert row["status"] == "ok", (name, row)
            assert is_number(row["median_s"]) and row["median_s"] >= 0, (name, row)
            assert is_number(row["speedup"]) and row["speedup"] > 0, (name, row)
            # py_tasks, short and noisy, runs 3 rounds per --repeat; the others one
            rounds = bench.PY_TASKS_ROUNDS if name == "py_tasks" else 1
            assert len(row["runs_s"]) == rounds, (name, row)
        # quick sizes: the bars, set for the full sizes, are not judged
        assert rows["aiopar"]["met"] is None
        assert workload["met"] is None
        for library, module in THIRD_PARTY.items():
            if library in rows and importlib.util.find_spec(module) is None:
                assert rows[library]["status"] == "not installed"
            elif library in rows:  # installed: not started at quick sizes (--peers auto)
                assert rows[library]["status"] == "skipped", (name, rows[library])
    lag = {row["contender"]: row for row in data["workloads"]["loop_lag"]["rows"]}
    for contender in CORE_ROWS:
        stats = lag[contender]["lag_ms"]
        assert all(is_number(stats[key]) for key in ("p50", "p99", "max"))
    assert data["options"] == {
        "quick": True,
        "repeat": 1,
        "loop": "asyncio",
        "sizes": data["options"]["sizes"],
    }
    assert data["machine"]["workers"] >= 1


@pytest.mark.timeout(180)
def test_quick_run_gives_the_figures_of_the_tiny_workloads(quick_run: dict[str, Any]) -> None:
    data = quick_run["json"]
    assert data is not None, quick_run["result"].stderr
    workloads = data["workloads"]

    def rows(name: str) -> dict[str, dict[str, Any]]:
        return {row["contender"]: row for row in workloads[name]["rows"]}

    tasks = rows("tiny_tasks")
    for contender in ("aiopar", "run_in_executor"):
        figures = tasks[contender]["figures"]
        # µs per task, the loop thread's CPU per call, one task's latency on an idle pool
        for key in ("us_per_task", "loop_cpu_us_per_call", "latency_us"):
            assert is_number(figures[key]) and figures[key] > 0, (contender, figures)
        assert "µs/task" in tasks[contender]["note"]
        assert "1 task alone" in tasks[contender]["note"]
    ratio = tasks["aiopar"]["figures"]["vs_run_in_executor"]
    assert ratio == pytest.approx(
        tasks["aiopar"]["median_s"] / tasks["run_in_executor"]["median_s"]
    )
    assert is_number(tasks["sequential"]["figures"]["us_per_task"])
    graph = rows("tiny_graph")
    nodes = data["options"]["sizes"]["tiny_graph"]
    for contender in CORE_ROWS:
        rate = graph[contender]["figures"]["tasks_per_s"]
        assert rate == pytest.approx(nodes / graph[contender]["median_s"])
        assert "tasks/s" in graph[contender]["note"]
    mapped = rows("tiny_map")
    tuned = mapped["ProcessPoolExecutor.map"]
    assert tuned["status"] == "ok" and is_number(tuned["median_s"]), tuned
    assert tuned["note"].startswith("chunksize=")
    assert mapped["aiopar"]["figures"]["vs_ppe_map"] == pytest.approx(
        mapped["aiopar"]["median_s"] / tuned["median_s"]
    )
    for name in ("tiny_tasks", "tiny_graph", "tiny_map"):
        assert workloads[name]["met"] is None  # quick sizes: not judged


def tiny_rows(**figures: dict[str, float]) -> list[Result]:
    return [Result("tiny", name, runs_s=[1.0], figures=f) for name, f in figures.items()]


@pytest.mark.parametrize(
    ("us", "ratio", "met"),
    [(20.0, 0.2, True), (60.0, 0.5, True), (61.0, 0.2, False), (20.0, 0.51, False)],
)
def test_tiny_tasks_bar_needs_60_us_and_half_of_run_in_executor(
    us: float, ratio: float, met: bool
) -> None:
    workload = catalog(bench.FULL)["tiny_tasks"]
    rows = tiny_rows(aiopar={"us_per_task": us, "vs_run_in_executor": ratio})
    judge(workload, rows)
    assert rows[0].met is met
    missing = tiny_rows(aiopar={"us_per_task": us})  # run_in_executor did not run
    judge(workload, missing)
    assert missing[0].met is False


@pytest.mark.parametrize(("rate", "met"), [(30_000.0, True), (29_999.0, False)])
def test_tiny_graph_bar_is_30000_tasks_per_second(rate: float, met: bool) -> None:
    rows = tiny_rows(aiopar={"tasks_per_s": rate})
    judge(catalog(bench.FULL)["tiny_graph"], rows)
    assert rows[0].met is met


@pytest.mark.parametrize(("ratio", "met"), [(0.5, True), (0.51, False)])
def test_tiny_map_bar_is_half_of_the_tuned_executor_map(ratio: float, met: bool) -> None:
    rows = tiny_rows(aiopar={"vs_ppe_map": ratio})
    judge(catalog(bench.FULL)["tiny_map"], rows)
    assert rows[0].met is met


def test_tiny_graph_is_fixed_and_each_node_needs_0_to_3_earlier_ones() -> None:
    inputs = tiny_graph.graph(2000)
    assert inputs == tiny_graph.graph(2000)  # the same graph on every run
    assert inputs != tiny_graph.graph(2000, seed=tiny_graph.SEED + 1)
    assert {len(deps) for deps in inputs} == {0, 1, 2, 3}
    for k, deps in enumerate(inputs):
        assert len(set(deps)) == len(deps) and all(0 <= j < k for j in deps), (k, deps)


def test_json_rows_carry_their_figures() -> None:
    workload = catalog(bench.FULL)["tiny_graph"]
    row = Result("tiny_graph", "aiopar", runs_s=[0.5], figures={"tasks_per_s": 20.0})
    data = to_json([(workload, [row])], machine={}, options={}, memory_method="", seconds=1.0)
    assert data["workloads"]["tiny_graph"]["rows"][0]["figures"] == {"tasks_per_s": 20.0}


@pytest.mark.timeout(180)
def test_quick_run_writes_a_markdown_table(quick_run: dict[str, Any]) -> None:
    markdown = quick_run["markdown"]
    assert markdown is not None, quick_run["result"].stderr
    lines = markdown.splitlines()
    header = lines.index(
        "| workload | contender | median s | speedup | peak +MiB | bar | met? | notes |"
    )
    assert lines[header + 1].startswith("| --- | --- | ---: |")
    rows = [line for line in lines[header + 2 :] if line.startswith("|")]
    assert len(rows) >= len(WORKLOADS) * len(CORE_ROWS)
    assert all(line.count(" | ") == 7 for line in rows)


@pytest.mark.timeout(60)
def test_bad_repeat_is_refused_with_usage() -> None:
    result = run_bench("--repeat", "0", timeout=50)
    assert result.returncode == 2
    assert "usage: python -m aiopar bench" in result.stderr
    assert "--repeat" in result.stderr


@pytest.mark.timeout(60)
def test_help_lists_the_options() -> None:
    result = run_bench("--help", timeout=50)
    assert result.returncode == 0, result.stderr
    for option in ("--repeat", "--quick", "--json", "--markdown", "--only"):
        assert option in result.stdout


def made_up_results() -> list[tuple[Workload, list[Result]]]:
    workloads = catalog(bench.FULL)
    vec = [
        Result("vec", "sequential", runs_s=[0.6, 0.5, 0.7]),
        Result("vec", "aiopar", runs_s=[0.3, 0.35, 0.32], peak_mib=300.0),
        Result("vec", "run_in_executor", runs_s=[1.0]),
        Result("vec", "joblib", status="not installed"),
    ]
    lag = [
        Result("loop_lag", "sequential", runs_s=[1.0]),
        Result("loop_lag", "aiopar", runs_s=[2.0], lag_ms={"p50": 0.1, "p99": 4.0, "max": 30.0}),
    ]
    return [(workloads["vec"], vec), (workloads["loop_lag"], lag)]


def test_judge_computes_speedups_and_verdicts() -> None:
    results = made_up_results()
    for workload, rows in results:
        judge(workload, rows)
    vec, lag = results[0][1], results[1][1]
    assert vec[0].speedup == pytest.approx(1.0)
    # paired rounds: median of 0.6/0.3, 0.5/0.35, 0.7/0.32 (not 0.6/0.32, the medians')
    assert vec[1].speedup == pytest.approx(2.0)
    assert vec[1].met is True  # ×2.0 ≥ ×1.5
    # one run against three: no pairs, so the ratio of the medians; bars are aiopar's
    assert vec[2].speedup == pytest.approx(0.6) and vec[2].met is None
    assert vec[3].speedup is None and vec[3].met is None
    assert lag[1].met is False  # max 30 ms > 25 ms


def test_quick_sizes_judge_no_bar() -> None:
    results = made_up_results()
    for workload, rows in results:
        judge(workload, rows, quick=True)
    vec, lag = results[0][1], results[1][1]
    assert vec[1].speedup == pytest.approx(2.0)  # speedups are still computed
    assert vec[1].met is None and lag[1].met is None
    table = format_table(results)
    aiopar_lines = [line for line in table.splitlines() if " aiopar " in line]
    assert len(aiopar_lines) == 2
    for line in aiopar_lines:
        assert "n/a (quick sizes)" in line
        assert " no " not in line and " yes " not in line
        assert "≥ ×1.5" not in line and "p99" not in line


def test_table_and_markdown_are_aligned() -> None:
    results = made_up_results()
    for workload, rows in results:
        judge(workload, rows)
    table = format_table(results).splitlines()
    assert table[0].startswith("workload")
    assert set(table[1]) == {"-"}
    contender_column = table[0].index("contender")
    assert [line[contender_column:].split()[0] for line in table[2:]] == [
        "sequential",
        "aiopar",
        "run_in_executor",
        "joblib",
        "sequential",
        "aiopar",
    ]
    assert "not installed" in table[5]
    markdown = format_markdown(results, "heading")
    assert markdown.startswith("heading\n\n| workload |")
    assert "| ×2.00 |" in markdown


def test_bare_processes_compute_every_task_once_per_run_and_stop() -> None:
    # The ceiling row of py_tasks: its answers are checked like any contender's, and
    # its processes must be gone after close() (the conftest fixture checks children).
    bare = BareProcesses(2, 10, 1000)
    assert bare._processes == []  # started by the first run, the bench's untimed one
    try:
        expected = [py_work(number, 1000) for number in range(10)]
        assert bare.run() == expected
        assert bare.run() == expected  # the counter starts again at each run
    finally:
        bare.close()
    assert not any(process.is_alive() for process in bare._processes)


def test_third_party_rows_are_not_paired_with_rounds_they_were_not_in(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # joblib & co. run after the rounds of the other rows: their speedup is the ratio of
    # medians, not a median of ratios with sequential runs timed at another moment.
    monkeypatch.setattr(peers, "installed", lambda name: True)

    class Session:
        def map(self, func: Any, items: Any) -> list[Any]:
            return [func(item) for item in items]

        def close(self) -> None:
            pass

    monkeypatch.setitem(peers.SESSIONS, "fake", ("fake", lambda workers: Session()))
    runner = Bench.__new__(Bench)
    runner.repeat, runner.sizes, runner.memory = 2, bench.QUICK, PeakMemory()
    runner.peers = True
    runner._progress, runner.workers, runner._expected = (lambda line: None), 1, [1]
    rows = runner.others(
        "py_tasks",
        lambda session: runner.blocking(lambda: [1]),
        equal,
        libraries=("fake",),
    )
    assert [row.contender for row in rows] == ["fake"]
    assert rows[0].status == "ok", rows[0].note
    assert rows[0].in_rounds is False


def test_installed_peers_are_skipped_when_told_and_started_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started: list[int] = []

    class Session:
        def __init__(self, workers: int) -> None:
            started.append(workers)

        def map(self, func: Any, items: Any) -> list[Any]:
            return [func(item) for item in items]

        def close(self) -> None:
            pass

    monkeypatch.setattr(peers, "installed", lambda name: True)
    monkeypatch.setitem(peers.SESSIONS, "fake", ("fake", Session))
    runner = Bench.__new__(Bench)
    runner.repeat, runner.sizes, runner.memory = 1, bench.QUICK, PeakMemory()
    runner._progress, runner.workers, runner._expected = (lambda line: None), 1, [1]

    def rows() -> list[Result]:
        use = lambda session: runner.blocking(lambda: [1])  # noqa: E731
        return runner.others("py_tasks", use, equal, libraries=("fake",))

    runner.peers = False
    skipped = rows()
    assert [(row.contender, row.status) for row in skipped] == [("fake", "skipped")]
    assert "--peers yes" in skipped[0].note and started == []
    runner.peers = True
    assert [(row.contender, row.status) for row in rows()] == [("fake", "ok")]
    assert started == [1]


def test_pool_rows_of_py_tasks_say_how_fast_they_ran_next_to_the_ceiling() -> None:
    def row(name: str, runs: list[float], **extra: Any) -> Result:
        return Result("py_tasks", name, runs_s=runs, **extra)

    rows = [
        row("sequential", [2.0, 2.0, 2.0]),
        row("aiopar", [1.0, 1.25, 2.0]),
        row("aiopar submit", [1.0, 1.0]),  # a round missing: no pairs to take
        row("run_in_executor", [0.5, 1.0, 1.0]),
        row("bare processes", [1.0, 1.0, 1.0]),
        row("joblib", [1.0, 1.0, 1.0], in_rounds=False),
    ]
    against_ceiling(rows, "bare processes")
    notes = {r.contender: r.note for r in rows}
    assert notes["aiopar"] == "×0.80 of the ceiling's speed (median over rounds)"
    assert notes["run_in_executor"] == "×1.00 of the ceiling's speed (median over rounds)"
    assert notes["aiopar submit"] == notes["joblib"] == notes["sequential"] == ""


def test_rounds_turn_the_order_of_the_contenders() -> None:
    # Each contender takes each place in a round in turn: none always runs right after
    # the sequential run. Round i's runs still land at runs_s[i], for the pairing.
    calls: list[str] = []

    def entry(name: str) -> Any:
        def run() -> Sample:
            calls.append(name)
            return Sample(float(len(calls)), [1])

        return (name, run)

    runner = Bench.__new__(Bench)
    runner.repeat, runner.sizes, runner.memory = 3, bench.QUICK, PeakMemory()
    runner._progress, runner.workers = (lambda line: None), 1
    rows = runner.measure("py_tasks", [entry("a"), entry("b"), entry("c")], equal)
    assert calls[:3] == ["a", "b", "c"]  # the untimed runs
    assert calls[3:] == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    runs = {row.contender: row.runs_s for row in rows}
    assert runs == {"a": [4.0, 9.0, 11.0], "b": [5.0, 7.0, 12.0], "c": [6.0, 8.0, 10.0]}


@pytest.mark.timeout(60)
def test_aiomultiprocess_session_maps_in_order_and_stops_its_processes() -> None:
    # An optional peer (not installed in CI): its rows appear only where it is importable.
    pytest.importorskip("aiomultiprocess")
    session = peers.SESSIONS["aiomultiprocess"][1](2)
    try:
        assert session.map(double, [1, 2, 3]) == [2, 4, 6]
    finally:
        session.close()  # the no_leaks fixture checks that its workers are gone
