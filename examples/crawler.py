"""A web crawler that fetches and parses in the worker processes, with coroutines.

The script starts a small aiohttp site of its own (``Site`` below, on this process's
event loop): page N links to pages 2N+1 and 2N+2 and to one more, answers after a
20 ms wait, as a remote server would, and holds a few thousand words of text. The
crawler starts at page 0 and follows links until it has every page.

Fetching is waiting and parsing is CPU work; here both happen in the workers:

* ``fetch_and_parse`` is an ``async def`` function. ``pool.amap(fetch_and_parse,
  urls, concurrency=16)`` runs it on an event loop each worker keeps, 16 pages at a
  time per worker: while one page is parsed, the others' requests are out.
* The pool's initializer ``client_session`` is an async generator: each worker opens
  one ``aiohttp.ClientSession`` (and its connection pool) when it starts, tasks reach it
  through ``aiopar.worker_state()``, and the code after ``yield`` closes it when the
  pool closes.
* The parent only keeps the set of pages seen and hands each new level of links to
  the workers; its loop also serves the site.

``--debug`` starts a watchdog in each worker (``watch_loop``, from the initializer): a
coroutine that holds its worker's loop for more than 100 ms (a parse that should be cut
in pieces, a blocking call) is reported on stderr with the line it is running. Parsing
one page here takes a few milliseconds, so nothing should be reported.

Run::

    python examples/crawler.py
    python examples/crawler.py --quick --debug
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import sys
import threading
import time
import traceback
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urljoin

import aiohttp
from aiohttp import web

import aiopar

# The vocabulary of the site's text: each page is 3,000 of these, in its own order.
WORDS = ("async", "await", "loop", "worker", "process", "core", "chunk", "queue", "parse")
WORDS += ("fetch", "page", "link", "crawler", "session", "result", "task", "future", "pickle")


# --- the site: served by the parent's event loop ------------------------------------------


def page_html(number: int, pages: int) -> str:
    """Page ``number`` of a site of ``pages`` pages: a title, text and up to three links."""
    links = {n for n in (2 * number + 1, 2 * number + 2, (number * 7 + 3) % pages) if n < pages}
    words = [WORDS[(number * 31 + i * i) % len(WORDS)] for i in range(3000)]
    text = " ".join(f"<em>{word}</em>" if i % 8 == 0 else word for i, word in enumerate(words))
    anchors = "".join(f'<li><a href="/page/{n}">page {n}</a></li>' for n in sorted(links))
    return (
        f"<html><head><title>Page {number}</title></head><body>"
        f"<p>{text}</p><ul>{anchors}</ul></body></html>"
    )


@asynccontextmanager
async def site(pages: int, delay: float) -> AsyncIterator[str]:
    """Serve the site on 127.0.0.1 (a free port) while the block runs; yield its address."""

    async def handle(request: web.Request) -> web.Response:
        number = int(request.match_info["number"])
        if number >= pages:
            raise web.HTTPNotFound()
        await asyncio.sleep(delay)  # the network and the remote server, in short
        return web.Response(text=page_html(number, pages), content_type="text/html")

    app = web.Application()
    app.router.add_get("/page/{number:[0-9]+}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        tcp = web.TCPSite(runner, "127.0.0.1", 0)
        await tcp.start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


# --- what runs in the workers: module level, so that workers import it ------------------


def watch_loop(threshold: float) -> None:
    """Report, on stderr, where this worker's event loop is held for over ``threshold`` s.

    Call it on the loop (here, from the initializer). A callback on the loop notes the
    time every ``threshold / 4`` seconds; a thread of its own checks that it does, and
    when it did not for ``threshold`` seconds, prints the stack of the loop's thread.
    """
    loop = asyncio.get_running_loop()
    loop_thread = threading.get_ident()
    beat = time.monotonic()

    def tick() -> None:  # runs on the loop: it is free
        nonlocal beat
        beat = time.monotonic()
        loop.call_later(threshold / 4, tick)

    def watchdog() -> None:
        reported = 0.0
        while True:
            time.sleep(threshold / 4)
            held = time.monotonic() - beat
            if held > threshold and reported != beat:  # once per stall
                reported = beat
                stack = "".join(traceback.format_stack(sys._current_frames()[loop_thread]))
                where = f"worker {os.getpid()}: loop held {held:.2f} s, at:"
                print(f"{where}\n{stack}", file=sys.stderr)

    tick()
    threading.Thread(target=watchdog, name="loop-watchdog", daemon=True).start()


async def client_session(debug: bool) -> AsyncIterator[aiohttp.ClientSession]:
    """The pool's initializer: runs on each worker's event loop when the worker starts.

    What it yields is the worker's state (``aiopar.worker_state()``); the rest runs when
    the worker ends (here, as the pool closes): it closes the session and says so.
    """
    if debug:
        watch_loop(threshold=0.1)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session
    print(f"worker {os.getpid()}: session closed", flush=True)


@dataclass(frozen=True)
class Page:
    """What the crawler keeps of a page."""

    url: str
    title: str
    links: tuple[str, ...]
    words: dict[str, int]
    worker: int  # the process id of the worker that fetched and parsed it


class PageParser(HTMLParser):
    """Collects the title, the links and the words of the text of one page."""

    def __init__(self) -> None:
        super().__init__()
        self.title = ""
        self.links: list[str] = []
        self.words: collections.Counter[str] = collections.Counter()
        self._open: list[str] = []  # the tags we are in

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._open.append(tag)
        href = dict(attrs).get("href")
        if tag == "a" and href:
            self.links.append(href)

    def handle_endtag(self, tag: str) -> None:
        if tag in self._open:
            del self._open[len(self._open) - 1 - self._open[::-1].index(tag) :]

    def handle_data(self, data: str) -> None:
        if "title" in self._open:
            self.title += data
        elif "p" in self._open:
            self.words.update(data.lower().split())


async def fetch_and_parse(url: str) -> Page:
    """Fetch ``url`` with this worker's session, then parse it (CPU, on this worker)."""
    session: aiohttp.ClientSession = aiopar.worker_state()
    async with session.get(url) as response:
        response.raise_for_status()
        html = await response.text()
    parser = PageParser()
    parser.feed(html)
    parser.close()
    links = tuple(urljoin(url, link) for link in parser.links)
    return Page(url, parser.title, links, dict(parser.words), os.getpid())


# --- the crawler: in the parent ---------------------------------------------------------------


async def crawl(start: str, pool: aiopar.Pool, concurrency: int) -> list[Page]:
    """Every page reachable from ``start``, one level of links at a time."""
    seen = {start}
    level = [start]
    found: list[Page] = []
    while level:
        pages = await pool.amap(fetch_and_parse, level, concurrency=concurrency)
        found += pages
        level = [link for page in pages for link in page.links if link not in seen]
        level = list(dict.fromkeys(level))  # each new link once, in order
        seen.update(level)
    return found


async def main(pages: int, workers: int, debug: bool) -> None:
    pool = aiopar.Pool(workers, initializer=client_session, initargs=(debug,))
    async with site(pages, delay=0.02) as address, pool:
        started = time.perf_counter()
        found = await crawl(f"{address}/page/0", pool, concurrency=16)
        seconds = time.perf_counter() - started
    words: collections.Counter[str] = collections.Counter()
    for page in found:
        words.update(page.words)
    titles = sorted(int(page.title.split()[1]) for page in found)
    print(f"crawled {len(found)} pages in {seconds:.2f} s with {workers} workers")
    print(f"fetched and parsed by {len({page.worker for page in found})} worker processes")
    print(f"{sum(words.values()):,} words, most common: {words.most_common(3)}")
    if titles != list(range(pages)):
        raise SystemExit(f"missing pages: {sorted(set(range(pages)) - set(titles))}")
    print(f"every page from 0 to {pages - 1} reached, each once")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="60 pages instead of 400")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument(
        "--debug", action="store_true", help="report coroutines that hold a worker's loop"
    )
    args = parser.parse_args()
    asyncio.run(main(60 if args.quick else 400, args.workers, args.debug))
