"""Run the examples: the scripts in a fresh interpreter, the aiohttp app in-process.

The aiohttp example is imported from its file, not from a package on ``sys.path``. Worker
processes come from a forkserver that took its ``sys.path`` when it started, and this
module is not on any ``sys.path`` at all, so a worker could not import it by name. The
``server_example`` fixture therefore registers the module with cloudpickle to be pickled
by value: its functions travel to the workers as code, whatever the workers can import.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import cloudpickle
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.typedefs import Handler

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def run_example(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``examples/<name> <args>`` with this interpreter, aiopar importable from ROOT."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=100,
        check=False,
    )


def assert_clean_run(proc: subprocess.CompletedProcess[str], expected: list[str]) -> None:
    """Exit code 0, every expected fragment on some output line, nothing alarming on stderr."""
    report = f"exit code {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    assert proc.returncode == 0, report
    lines = proc.stdout.splitlines()
    for fragment in expected:
        assert any(fragment in line for line in lines), f"no line with {fragment!r}\n{report}"
    assert "Traceback" not in proc.stderr, report
    assert "leaked" not in proc.stderr, report  # resource_tracker: shared memory not freed


# --- the scripts ---------------------------------------------------------------------------


@pytest.mark.timeout(120)
@pytest.mark.parametrize("backend", ["asyncio", "uvloop", "trio"])
def test_ray_style(backend: str) -> None:
    if backend != "asyncio":
        pytest.importorskip(backend)
    proc = run_example("ray_style.py", "--quick", "--backend", backend)
    assert_clean_run(
        proc,
        [
            "ray-style demo on",
            f"({backend})",
            "1. 8 tasks of 0.05 s: sequential",
            "2. task graph, two 300x300 matrices then their product: sequential",
            "3. sum of 1..8 with a 0.05 s add = 36: linear chain",
            "tree_reduce",
            "all results checked",
        ],
    )


@pytest.mark.timeout(120)
def test_chunked_array() -> None:
    proc = run_example("chunked_array.py", "--quick")
    expected = [
        "cover 9990 of 10000 items: the last 10 are dropped",
        "amap_chunks(compute_array, chunks=15): 10000 of 10000 items (list)",
        "amap_chunks(halve, chunks=15): 10000 of 10000 items (ndarray)",
        "nothing dropped",
    ]
    if importlib.util.find_spec("pandas") is not None:
        expected.append("amap_chunks(add_half_column, DataFrame, chunks=15): 10000 of 10000 rows")
    assert_clean_run(proc, expected)


@pytest.mark.timeout(120)
def test_peers() -> None:
    proc = run_example("peers.py", "--quick", "--workers", "2")
    assert_clean_run(
        proc,
        [
            "cheap  aiopar (asyncio)",
            "cheap  aiopar (trio)",
            "tasks  aiopar (trio)",
            "answers checked",
        ],
    )


@pytest.mark.timeout(120)
def test_crawler() -> None:
    proc = run_example("crawler.py", "--quick", "--debug")
    assert_clean_run(
        proc,
        [
            "crawled 60 pages in",
            "worker processes",
            "most common: [(",
            "every page from 0 to 59 reached, each once",
        ],
    )
    # Each worker that started closed its session, from the initializer, as the pool closed.
    closed = [line for line in proc.stdout.splitlines() if line.endswith(": session closed")]
    assert 1 <= len(closed) <= 2, proc.stdout


# --- the aiohttp app ----------------------------------------------------------------------

# /score with these parameters costs a few seconds of CPU time here (600 steps took 2.6 s
# on one core of a loaded machine): ample time to ask /health while it runs, and the
# sequential reference the test computes afterwards stays cheap.
SCORE_PARAMS = {"n": 1_000_000, "steps": 1_000, "seed": 7}


@pytest.fixture(scope="module")
def server_example() -> Iterator[ModuleType]:
    """examples/aiohttp_server.py, imported from its path, its functions pickled by value."""
    name = "aiopar_example_aiohttp_server"
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / "aiohttp_server.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # cloudpickle only registers modules found in sys.modules
    try:
        spec.loader.exec_module(module)
        cloudpickle.register_pickle_by_value(module)
        try:
            yield module
        finally:
            cloudpickle.unregister_pickle_by_value(module)
    finally:
        del sys.modules[name]


@pytest.mark.asyncio
@pytest.mark.timeout(120)
async def test_health_is_answered_while_score_runs(server_example: ModuleType) -> None:
    app = server_example.create_app(workers=2)

    score_entered = asyncio.Event()

    @web.middleware
    async def note_score_entered(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path == "/score":
            score_entered.set()
        return await handler(request)

    app.middlewares.append(note_score_entered)

    finished: list[str] = []  # paths, in the order their answers arrived

    async with TestClient(TestServer(app)) as client:

        async def get(path: str, params: dict[str, int] | None = None) -> Any:
            async with client.get(path, params=params) as response:
                assert response.status == 200, await response.text()
                body = await response.json()
            finished.append(path)
            return body

        score_task = asyncio.create_task(get("/score", SCORE_PARAMS))
        # Wait until the /score handler runs (it then awaits the workers), or fails early.
        entered = asyncio.create_task(score_entered.wait())
        await asyncio.wait({score_task, entered}, return_when=asyncio.FIRST_COMPLETED)
        entered.cancel()
        assert not score_task.done(), f"/score finished first: {score_task.result()}"

        health = await get("/health")
        assert health == {"status": "ok"}
        assert finished == ["/health"], "/health was not answered while /score was running"

        score = await score_task
        assert finished == ["/health", "/score"]

    x0 = server_example.make_inputs(SCORE_PARAMS["n"], SCORE_PARAMS["seed"])
    expected = server_example.simulate(x0, SCORE_PARAMS["steps"])
    assert score["n"] == SCORE_PARAMS["n"]
    assert score["steps"] == SCORE_PARAMS["steps"]
    assert score["head"] == expected[:5].tolist()
    assert score["mean"] == pytest.approx(float(expected.mean()), rel=1e-12)


@pytest.mark.asyncio
@pytest.mark.timeout(120)
async def test_score_rejects_bad_parameters(server_example: ModuleType) -> None:
    app = server_example.create_app(workers=1)
    async with TestClient(TestServer(app)) as client:
        for params in ({"n": "many"}, {"n": 0}, {"steps": -1}):
            async with client.get("/score", params=params) as response:
                assert response.status == 400
                assert next(iter(params)) in await response.text()


# --- testing with the pytest plugin: examples/testing and docs/testing.md ---------------------


def doc_blocks(page: str) -> list[tuple[str, str]]:
    """The fenced code blocks of a docs page, as (language, text)."""
    text = (ROOT / "docs" / page).read_text()
    blocks, language, lines = [], None, []
    for line in text.splitlines():
        if language is None and line.startswith("```") and len(line) > 3:
            language, lines = line[3:].strip(), []
        elif language is not None and line == "```":
            blocks.append((language, "\n".join(lines) + "\n"))
            language = None
        elif language is not None:
            lines.append(line)
    return blocks


def run_pytest(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m pytest`` in ``folder``, as a project of its own, warnings as errors."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "AIOPAR_"))}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error", *args],
        capture_output=True,
        text=True,
        cwd=folder,
        env=env,
        timeout=100,
        check=False,
    )


@pytest.mark.timeout(120)
def test_the_testing_example_suite_passes(tmp_path: Path) -> None:
    pytest.importorskip("trio")
    folder = tmp_path / "testing"
    shutil.copytree(EXAMPLES / "testing", folder)  # as a user copies it
    result = run_pytest(folder)
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    assert "5 passed" in result.stdout, report
    assert "warning" not in report.lower(), report


@pytest.mark.timeout(120)
def test_the_testing_page_recipe_runs_as_written(tmp_path: Path) -> None:
    """The page's test file with its pytest-asyncio settings, on the plugin's fixture,
    then on the hand-written conftest.py with the plugin turned off."""
    pytest.importorskip("trio")
    blocks = doc_blocks("testing.md")
    settings = [text for language, text in blocks if "asyncio_mode" in text]
    conftests = [text for _, text in blocks if text.startswith("# conftest.py")]
    tests = [text for _, text in blocks if text.startswith("# test_squares.py")]
    assert len(settings) == 1 and len(conftests) == 1 and len(tests) == 1
    (tmp_path / "pyproject.toml").write_text(settings[0])
    (tmp_path / "test_squares.py").write_text(tests[0])
    for args in ([], ["-p", "no:aiopar"]):
        if args:
            (tmp_path / "conftest.py").write_text(conftests[0])
        result = run_pytest(tmp_path, *args)
        report = result.stdout + result.stderr
        assert result.returncode == 0, report
        assert "4 passed" in result.stdout, report
        assert "warning" not in report.lower(), report


# --- the Dask cluster: examples/cluster.py and docs/scaling-out.md ----------------------------


@pytest.mark.timeout(120)
def test_cluster() -> None:
    pytest.importorskip("distributed")
    proc = run_example("cluster.py", "--quick")
    assert_clean_run(
        proc,
        [
            "started a LocalCluster at tcp://",
            "local pool, 2 worker processes",
            "cluster at tcp://",
            "cluster, again",
            "all results checked: the same answers on both pools",
        ],
    )
