"""Workload ``crawl``: fetch pages from a slow local site and parse each one, four ways;
run only when named (``--only crawl``), as it needs aiohttp.

The site (:mod:`.crawl_site`) runs in a process of its own and answers each request
after ``crawl_delay_s`` with a page that costs ~10 ms of pure-Python parsing. The rows:

* ``one asyncio process``: one event loop fetches and parses, ``workers × CONCURRENCY``
  requests at once (the reference of the speedups);
* ``aiopar imap``: the parent's loop fetches, ``imap`` parses in the workers;
* ``aiopar``: coroutines in the workers, ``amap(fetch_and_parse, urls,
  concurrency=CONCURRENCY)``, one ``aiohttp.ClientSession`` per worker opened (and
  closed) by an async generator initializer;
* ``aiomultiprocess`` (when importable): its ``Pool`` with ``childconcurrency=
  CONCURRENCY`` mapping the same fetch-and-parse coroutine.

Every event loop of the workload, in the bench process and in the workers of either
pool, is uvloop when installed. The parent-side rows run on a private
:class:`asyncio.Runner` (and aiomultiprocess's pool, :class:`..peers.Aiomultiprocess`,
on another one, the loop it is bound to), each driven from the bench's main thread,
which blocks while a row runs.
:func:`client_session`, :func:`fetch_and_parse` and :func:`fetch_and_parse_global`
run in the workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import aiopar

from ..._load import CpuWatch
from .. import peers
from ..rows import Result, Sample, Workload
from ..runner import Bench, Entry, equal, failure
from ..sizes import Sizes
from .crawl_site import Parsed, Site, SiteFailed, parse_page, tree_cpu_seconds

if TYPE_CHECKING:
    import aiohttp

__all__ = [
    "CONCURRENCY",
    "ROWS",
    "client_session",
    "fetch_and_parse",
    "fetch_and_parse_global",
    "fetch_text",
    "fetched",
    "run",
    "workload",
]

CONCURRENCY = 16
"""Requests one process has out at once (aiomultiprocess's default ``childconcurrency``);
the single process gets ``workers ×`` this many."""

REFERENCE = "one asyncio process"
ROWS = (REFERENCE, "aiopar imap", "aiopar", "aiomultiprocess")
"""The rows, in the order they are listed."""


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop when installed (as aiopar's workers use), else asyncio's default."""
    if importlib.util.find_spec("uvloop") is None:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = importlib.import_module(
        "uvloop"
    ).new_event_loop
    return factory


async def fetch_text(session: aiohttp.ClientSession, url: str) -> str:
    """GET ``url`` and return its body as text; raises for an HTTP error status."""
    async with session.get(url) as response:
        response.raise_for_status()
        return await response.text()


# --- run in the workers -----------------------------------------------------------------


async def client_session() -> AsyncIterator[aiohttp.ClientSession]:
    """The aiopar pool's initializer: one ClientSession per worker, that worker's state
    (:func:`aiopar.worker_state`), closed when the worker ends."""
    import aiohttp

    async with aiohttp.ClientSession() as session:
        yield session


async def fetch_and_parse(url: str) -> Parsed:
    """Fetch ``url`` with the worker's session (:func:`aiopar.worker_state`), parse it."""
    session: aiohttp.ClientSession = aiopar.worker_state()
    return parse_page(await fetch_text(session, url))


_session: aiohttp.ClientSession | None = None  # aiomultiprocess: one per worker process


async def fetch_and_parse_global(url: str) -> Parsed:
    """:func:`fetch_and_parse` for aiomultiprocess, which has no per-worker state: the
    session is a module global, opened by the first task of each worker."""
    global _session
    if _session is None:
        import aiohttp

        _session = aiohttp.ClientSession()
    return parse_page(await fetch_text(_session, url))


# --- run in the bench process -----------------------------------------------------------


async def fetched(
    session: aiohttp.ClientSession, urls: Sequence[str], concurrency: int
) -> AsyncIterator[str]:
    """The bodies of ``urls`` as they arrive, ``concurrency`` requests out at once.

    Cancellation: closing the generator (or cancelling its consumer) cancels the
    requests still out.
    """
    todo = iter(urls)
    first = [url for _, url in zip(range(concurrency), todo, strict=False)]
    out = {asyncio.ensure_future(fetch_text(session, url)) for url in first}
    try:
        while out:
            done, out = await asyncio.wait(out, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                url = next(todo, None)
                if url is not None:
                    out.add(asyncio.ensure_future(fetch_text(session, url)))
                yield task.result()
    finally:
        for task in out:
            task.cancel()
        await asyncio.gather(*out, return_exceptions=True)


class _Loop:
    """A private event loop with one ClientSession, for the rows run from the parent.

    Blocks the calling thread while it runs a row.
    """

    def __init__(self) -> None:
        self.runner = asyncio.Runner(loop_factory=_loop_factory())
        self._session: aiohttp.ClientSession | None = None

    def timed(
        self, work: Callable[[aiohttp.ClientSession], Awaitable[Any]]
    ) -> Callable[[], Sample]:
        """A contender that awaits ``work(session)`` on this loop, timed."""

        async def once() -> Sample:
            if self._session is None:
                import aiohttp

                self._session = aiohttp.ClientSession()
            start = time.perf_counter()
            value = await work(self._session)
            return Sample(time.perf_counter() - start, value)

        return lambda: self.runner.run(once())

    def close(self) -> None:
        try:
            if self._session is not None:
                self.runner.run(self._session.close())
        finally:
            self.runner.close()


def _paired(reference: Result, row: Result) -> float | None:
    """Median over rounds of t_reference / t_row, or the ratio of medians."""
    ref, mine = reference.median_s, row.median_s
    if ref is None or not mine:
        return None
    if len(reference.runs_s) == len(row.runs_s) and all(t > 0 for t in row.runs_s):
        return statistics.median(r / t for r, t in zip(reference.runs_s, row.runs_s, strict=True))
    return ref / mine


def _meets(row: Result) -> bool:
    ahead = row.figures.get("vs_aiomultiprocess")
    return row.speedup is not None and row.speedup >= 1.8 and (ahead is None or ahead > 1.0)


def workload(sizes: Sizes) -> Workload:
    """Title, description and bar of ``crawl`` at these sizes."""
    n, delay_ms = sizes.crawl_requests, sizes.crawl_delay_s * 1000
    return Workload(
        "crawl",
        f"crawl {n:,} pages: {delay_ms:g} ms wait + ~10 ms parse each",
        f"{n:,} GETs to a local aiohttp server (its own process) answering after"
        f" {delay_ms:g} ms with a page whose HTMLParser parse takes ~10 ms; fetch and"
        f" parse in one asyncio process, {CONCURRENCY} requests at once per process,"
        " vs fetch in the parent + imap, coroutines in aiopar's workers, aiomultiprocess",
        "≥ ×1.8 of one process, ahead of aiomultiprocess",
        _meets,
    )


def _missing_aiohttp() -> list[Result]:
    note = "needs aiohttp: pip install aiohttp (it is in aiopar's test extra)"
    return [Result("crawl", name, status="not installed", note=note) for name in ROWS]


def run(bench: Bench) -> list[Result]:
    """The rows of ``crawl`` (see the module docstring); "not installed" rows when
    aiohttp is missing, failed rows when the site does not start."""
    if importlib.util.find_spec("aiohttp") is None:
        return _missing_aiohttp()
    sizes = bench.sizes
    try:
        site = Site(delay_s=sizes.crawl_delay_s)
    except (SiteFailed, OSError) as exc:
        return [Result("crawl", name, status="failed", note=failure(exc)) for name in ROWS]
    urls = [f"{site.url}/page/{number}" for number in range(sizes.crawl_requests)]
    total = bench.workers * CONCURRENCY
    cpu: dict[str, _Cpu] = {name: _Cpu() for name in ROWS}

    def watched(name: str, run_once: Callable[[], Sample]) -> Entry:
        def each() -> Sample:
            watch, server, tree = CpuWatch(), site.cpu_seconds(), tree_cpu_seconds()
            sample = run_once()
            cpu[name].add(sample.seconds, watch, server, site.cpu_seconds(), tree)
            return sample

        return name, each

    async def one_process(session: aiohttp.ClientSession) -> list[Parsed]:
        limit = asyncio.Semaphore(total)

        async def one(url: str) -> Parsed:
            async with limit:
                return parse_page(await fetch_text(session, url))

        return list(await asyncio.gather(*(one(url) for url in urls)))

    async def fetch_in_parent(session: aiohttp.ClientSession) -> list[Parsed]:
        bodies = fetched(session, urls, total)
        found = [x async for x in bench.pool.imap(parse_page, bodies, ordered=False)]
        return sorted(found)

    parent = _Loop()
    pools: list[aiopar.Pool] = []  # the pool of the "aiopar" row, made on its first run
    peer: peers.Aiomultiprocess | None = None  # made on its first run, if installed

    async def in_workers(session: aiohttp.ClientSession) -> list[Parsed]:
        if not pools:
            pools.append(aiopar.Pool(bench.workers, initializer=client_session))
            pools[0].open()
        return await pools[0].amap(fetch_and_parse, urls, concurrency=CONCURRENCY)

    entries = [
        watched(REFERENCE, parent.timed(one_process)),
        watched("aiopar imap", parent.timed(fetch_in_parent)),
        watched("aiopar", parent.timed(in_workers)),
    ]

    def aiomultiprocess_map() -> Sample:
        nonlocal peer
        if peer is None:  # every loop of the row uvloop's, as in aiopar's workers
            factory = _loop_factory()
            peer = peers.Aiomultiprocess(
                bench.workers, childconcurrency=CONCURRENCY, loop_factory=factory
            )
        pool = peer
        return _timed_blocking(lambda urls: pool.map_async(fetch_and_parse_global, urls), urls)

    def close_peer() -> None:
        if peer is not None:
            peer.close()

    def close_pools() -> None:
        for pool in pools:
            pool.close()

    installed = importlib.util.find_spec("aiomultiprocess") is not None
    if installed:
        entries.append(watched("aiomultiprocess", aiomultiprocess_map))
    with contextlib.ExitStack() as stack:  # closed in reverse: pools, peer, loop, site
        stack.callback(site.close)
        stack.callback(parent.close)
        stack.callback(close_peer)
        stack.callback(close_pools)
        rows = bench.measure("crawl", entries, equal)
    if not installed:
        rows.append(Result("crawl", "aiomultiprocess", status="not installed"))
    _describe(rows, cpu, total)
    return rows


def _timed_blocking(work: Callable[[Sequence[str]], Any], urls: Sequence[str]) -> Sample:
    start = time.perf_counter()
    value = work(urls)
    return Sample(time.perf_counter() - start, value)


class _Cpu:
    """Where the CPU time of one row's runs went: the server, the row's own processes
    (the bench process and every worker, the server left out), and other programs."""

    def __init__(self) -> None:
        self.seconds = self.server = self.ours = self.others = 0.0
        self.known = True
        self.runs = 0

    def add(
        self,
        seconds: float,
        watch: CpuWatch,
        server_before: float | None,
        server_after: float | None,
        tree_before: float | None,
    ) -> None:
        """Count one run of ``seconds``, from readings taken before and after it; the
        first run of a row (untimed: it starts workers, imports, opens sessions) is
        left out."""
        tree_after, others = tree_cpu_seconds(), watch.others()
        self.runs += 1
        if self.runs == 1:
            return
        if None in (server_before, server_after, tree_before, tree_after, others):
            self.known = False
            return
        assert server_before is not None and server_after is not None
        assert tree_before is not None and tree_after is not None and others is not None
        self.seconds += seconds
        self.server += server_after - server_before
        self.ours += tree_after - tree_before - (server_after - server_before)
        self.others += others * seconds

    def figures(self, runs: int) -> dict[str, float]:
        """Per timed run: CPU seconds of the row's processes; shares of the wall time:
        the server's (of one CPU) and other programs' (of all CPUs)."""
        if not self.known or self.seconds <= 0 or runs <= 0:
            return {}
        return {
            "cpu_s_per_run": self.ours / runs,
            "server_cpu_share": self.server / self.seconds,
            "others_share": self.others / self.seconds,
        }


def _describe(rows: list[Result], cpu: dict[str, _Cpu], total: int) -> None:
    """Speedups against the single process, the aiopar row's lead over aiomultiprocess,
    and notes: how each row works, the CPU time it used, the server's share of a CPU
    and the share of the CPUs other programs took while it ran."""
    by_name = {row.contender: row for row in rows}
    how = {
        REFERENCE: f"fetch + parse on one loop, {total} requests at once",
        "aiopar imap": f"parent fetches ({total} at once), imap(parse_page) in the workers",
        "aiopar": f"amap(async fetch+parse, concurrency={CONCURRENCY}), a session per worker",
        "aiomultiprocess": f"Pool(childconcurrency={CONCURRENCY}).map(async fetch+parse)",
    }
    reference = by_name[REFERENCE]
    for row in rows:
        if row.status != "ok":
            continue
        if reference.status == "ok":
            row.speedup = _paired(reference, row)
        row.note = how[row.contender]
        row.figures.update(cpu[row.contender].figures(len(row.runs_s)))
        if row.figures:
            row.note += (
                f"; {row.figures['cpu_s_per_run']:.1f} CPU s a run, server"
                f" {row.figures['server_cpu_share']:.0%} of a CPU, other programs"
                f" {row.figures['others_share']:.0%} of the CPUs"
            )
    mine, theirs = by_name.get("aiopar"), by_name.get("aiomultiprocess")
    if mine and theirs and mine.status == theirs.status == "ok":
        lead = _paired(theirs, mine)
        if lead is not None:
            mine.figures["vs_aiomultiprocess"] = lead
            mine.note += f"; ×{lead:.2f} of aiomultiprocess's speed"
