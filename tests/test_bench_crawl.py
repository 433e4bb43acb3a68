"""The benchmark's crawl workload (``aiopar/bench/workloads/crawl*.py``): the site's pages
and parser, its server process, and one quick ``--only crawl`` run. No timing is
asserted: the rows must be there, with their runs and ratios."""

from __future__ import annotations

import asyncio
import json
import math
import urllib.request
from pathlib import Path

import psutil
import pytest

from aiopar.bench.workloads import EXTRA_WORKLOADS, WORKLOADS, crawl
from aiopar.bench.workloads.crawl_site import Site, page, parse_page
from tests.scripts import run_bench

ROOT = Path(__file__).resolve().parent.parent


def test_crawl_runs_only_when_named() -> None:
    assert "crawl" in EXTRA_WORKLOADS
    assert "crawl" not in WORKLOADS


@pytest.mark.parametrize("number", [0, 7, 1999])
def test_parse_page_reads_title_links_and_prices(number: int) -> None:
    items = 25
    cents = sum(
        (number * 7 + i * 13) % 10_000 // 100 * 100 + (number + i) % 100 for i in range(items)
    )
    assert parse_page(page(number, items)) == (number, items, cents)


def test_parse_page_refuses_a_page_of_another_site() -> None:
    with pytest.raises(ValueError, match="not a page of the crawl site: title 'Welcome'"):
        parse_page("<html><head><title>Welcome</title></head><body></body></html>")


@pytest.mark.timeout(60)
def test_site_serves_pages_then_stops() -> None:
    with Site(items=5, delay_s=0.01) as site:
        server = psutil.Process(site.pid)
        with urllib.request.urlopen(f"{site.url}/page/42", timeout=30) as response:
            assert parse_page(response.read().decode()) == parse_page(page(42, 5))
        assert (site.cpu_seconds() or 0.0) >= 0.0
    assert not server.is_running() or server.status() == psutil.STATUS_ZOMBIE


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_fetched_yields_every_body_and_cancels_the_rest_when_closed() -> None:
    aiohttp = pytest.importorskip("aiohttp")
    with Site(items=3, delay_s=0.01) as site:
        urls = [f"{site.url}/page/{n}" for n in range(10)]
        async with aiohttp.ClientSession() as session:
            bodies = [body async for body in crawl.fetched(session, urls, 4)]
            assert sorted(parse_page(body)[0] for body in bodies) == list(range(10))

            before = asyncio.all_tasks()
            source = crawl.fetched(session, urls, 4)
            first = await anext(source)
            assert parse_page(first)[1] == 3
            started = asyncio.all_tasks() - before
            assert started, "fetched() had no requests out"
            await source.aclose()
            assert all(task.done() for task in started)
            assert asyncio.all_tasks() - before == set()


def test_without_aiohttp_every_row_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    real = crawl.importlib.util.find_spec
    monkeypatch.setattr(
        crawl.importlib.util,
        "find_spec",
        lambda name, *args: None if name == "aiohttp" else real(name, *args),
    )
    rows = crawl.run(object())  # type: ignore[arg-type]  # returns before using the bench
    assert [row.contender for row in rows] == list(crawl.ROWS)
    for row in rows:
        assert row.status == "not installed"
        assert "pip install aiohttp" in row.note


@pytest.mark.timeout(300)
def test_quick_crawl_run_has_every_row_with_runs_and_speedups(tmp_path: Path) -> None:
    pytest.importorskip("aiohttp")
    output = tmp_path / "bench.json"
    options = ["--only", "crawl", "--quick", "--repeat", "1", "--json", str(output)]
    done = run_bench(*options, timeout=280)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "crawl 64 pages: 20 ms wait + ~10 ms parse each" in done.stdout
    data = json.loads(output.read_text())
    assert list(data["workloads"]) == ["crawl"]
    rows = {row["contender"]: row for row in data["workloads"]["crawl"]["rows"]}
    assert list(rows) == list(crawl.ROWS)
    ran = [crawl.REFERENCE, "aiopar imap", "aiopar"]
    if rows["aiomultiprocess"]["status"] != "not installed":
        ran.append("aiomultiprocess")
        assert math.isfinite(rows["aiopar"]["figures"]["vs_aiomultiprocess"])
    for name in ran:
        row = rows[name]
        assert row["status"] == "ok", row
        assert len(row["runs_s"]) == 1 and row["runs_s"][0] > 0, row
        assert math.isfinite(row["speedup"]) and row["speedup"] > 0, row
        assert "server" in row["note"], row
        if Path("/proc/self/stat").exists():  # CPU time is read from /proc
            assert row["figures"]["cpu_s_per_run"] > 0, row
            assert 0 <= row["figures"]["others_share"] <= 1, row
    assert rows[crawl.REFERENCE]["speedup"] == 1.0
    assert data["workloads"]["crawl"]["met"] is None  # quick sizes: the bar is not judged
