"""The site the ``crawl`` workload fetches: its pages, their parser, and the server.

A page is a list of ``items`` products, each a link and a price, about 95 bytes of
HTML per item. :func:`parse_page` reads one with the standard library's
:class:`html.parser.HTMLParser`, pure Python holding the GIL: about 52 µs per item on
the machine the bench was written on, so the default 190 items cost ~10 ms a page.

The server (``python -m aiopar.bench.workloads.crawl_site``) is an aiohttp app in a
process of its own, so that its work is not charged to the contender being timed and
is visible apart: :class:`Site` starts it, reads its address and its CPU time from
``/proc``, and stops it. ``GET /page/{number}`` answers after ``--delay`` seconds
(``asyncio.sleep``, the server's loop stays free) with page ``number``, built once and
cached. Everything in :class:`Site` blocks the calling thread; the server's handlers
run on its own event loop (uvloop when installed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import importlib.util
import os
import select
import subprocess
import sys
from collections.abc import Sequence
from html.parser import HTMLParser

from ..._load import process_tree

__all__ = [
    "ITEMS",
    "Parsed",
    "Site",
    "SiteFailed",
    "main",
    "page",
    "parse_page",
    "tree_cpu_seconds",
]

ITEMS = 190
"""Items per page: about 10 ms of :func:`parse_page` on the bench's machine."""

Parsed = tuple[int, int, int]
"""What :func:`parse_page` finds: (page number, links, sum of the prices in cents)."""


def page(number: int, items: int = ITEMS) -> str:
    """Page ``number`` of the site: a title and ``items`` products with links and prices."""
    rows = "".join(
        f'<li class="item"><a href="/item/{number}-{i}">Item {number}.{i}</a>'
        f' <span class="price">{(number * 7 + i * 13) % 10_000 // 100}.'
        f"{(number + i) % 100:02d}</span></li>\n"
        for i in range(items)
    )
    return (
        f"<html><head><title>Page {number}</title></head>"
        f'<body><ul class="items">\n{rows}</ul></body></html>\n'
    )


class _PageParser(HTMLParser):
    """Collects the title, the number of links and the prices of one page."""

    def __init__(self) -> None:
        super().__init__()
        self.title = ""
        self.links = 0
        self.cents = 0
        self._in: str | None = None  # "title" or "price" while inside one

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a" and any(name == "href" for name, _ in attrs):
            self.links += 1
        elif tag == "span" and ("class", "price") in attrs:
            self._in = "price"
        elif tag == "title":
            self._in = "title"

    def handle_endtag(self, tag: str) -> None:
        self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "price":
            whole, _, cents = data.strip().partition(".")
            self.cents += int(whole) * 100 + int(cents)
        elif self._in == "title":
            self.title += data


def parse_page(text: str) -> Parsed:
    """Parse one page (pure Python, ~10 ms for the default page): its number, how many
    links it has and the sum of its prices in cents.

    Raises:
        ValueError: when ``text`` is not a page of this site (no "Page N" title).
    """
    parser = _PageParser()
    parser.feed(text)
    parser.close()
    words = parser.title.split()
    if len(words) != 2 or words[0] != "Page" or not words[1].isdigit():
        raise ValueError(f"not a page of the crawl site: title {parser.title!r}")
    return int(words[1]), parser.links, parser.cents


# --- the server, in its own process ------------------------------------------------------


async def _serve(items: int, delay_s: float) -> None:
    from aiohttp import web

    @functools.cache
    def body(number: int) -> bytes:
        return page(number, items).encode()

    async def handle(request: web.Request) -> web.Response:
        number = int(request.match_info["number"])
        await asyncio.sleep(delay_s)
        return web.Response(body=body(number), content_type="text/html")

    app = web.Application()
    app.router.add_get("/page/{number:[0-9]+}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        host, port = runner.addresses[0][:2]
        print(f"serving on http://{host}:{port}", flush=True)
        # Serve until the parent closes our stdin (or ends us with a signal).
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    finally:
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> None:
    """Run the site's server until stdin closes; print its address first."""
    parser = argparse.ArgumentParser(description="The crawl workload's site.")
    parser.add_argument("--items", type=int, default=ITEMS, help="items per page")
    parser.add_argument("--delay", type=float, default=0.02, help="seconds before each answer")
    args = parser.parse_args(argv)
    if importlib.util.find_spec("uvloop") is not None:
        import uvloop

        uvloop.run(_serve(args.items, args.delay))
    else:
        asyncio.run(_serve(args.items, args.delay))


def _cpu_seconds(pid: int, children: bool = False) -> float | None:
    """User + system CPU seconds of process ``pid`` (with ``children``: plus those of
    its children that ended and were waited for); None without ``/proc``."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            fields = file.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    ticks = sum(int(value) for value in fields[11 : 15 if children else 13])
    return ticks / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds() -> float | None:
    """CPU seconds used so far by this process and its descendants (those that ended
    counted through their parents); None without ``/proc``."""
    total = 0.0
    for pid in process_tree():
        seconds = _cpu_seconds(pid, children=True)
        if seconds is None and pid == os.getpid():
            return None
        total += seconds or 0.0
    return total


class SiteFailed(RuntimeError):
    """The site's server did not start; the message holds what it printed."""


class Site:
    """The server process of the crawl site: started by the constructor, stopped by
    :meth:`close` (or the ``with`` block). Blocks the calling thread.

    Args:
        items: items per page.
        delay_s: seconds the server waits before each answer.
        timeout: seconds to wait for the server to print its address.

    Raises:
        SiteFailed: the server exited or said nothing within ``timeout``.
    """

    def __init__(self, items: int = ITEMS, delay_s: float = 0.02, timeout: float = 60) -> None:
        command = [sys.executable, "-m", __name__, "--items", str(items), "--delay", str(delay_s)]
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        ready, _, _ = select.select([self._process.stdout], [], [], timeout)
        line = self._process.stdout.readline() if ready else ""
        if not line.startswith("serving on "):
            self.close()
            assert self._process.stderr is not None
            said = (line + self._process.stderr.read())[-2000:]
            raise SiteFailed(f"the crawl site's server did not start: {said or 'no output'}")
        self.url = line.split()[-1]
        """The base address, ``http://127.0.0.1:PORT``; pages are at ``/page/N``."""

    @property
    def pid(self) -> int:
        """The server's process id."""
        return self._process.pid

    def cpu_seconds(self) -> float | None:
        """CPU seconds the server has used so far (user + system), or None without
        ``/proc``."""
        return _cpu_seconds(self._process.pid)

    def close(self) -> None:
        """Stop the server: close its stdin, then wait for it (terminate it after 10 s)."""
        with contextlib.suppress(OSError):
            if self._process.stdin is not None:
                self._process.stdin.close()
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        for stream in (self._process.stdout, self._process.stderr):
            if stream is not None:
                stream.close()

    def __enter__(self) -> Site:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


if __name__ == "__main__":
    main()
