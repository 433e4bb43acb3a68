"""Workload ``tiny_map``: ``amap`` over many tiny items, against a hand-tuned executor map.

Each item, :func:`~aiopar.bench.workloads.tiny_tasks.double`, costs nothing: the row
measures how well a map packs items into few messages. Besides ``run_in_executor``
(one piece per worker, as the other map workloads do by hand), the
``ProcessPoolExecutor.map`` row calls the executor's own map with a chunk size tuned
by hand (four chunks per worker), from plain synchronous code; the other libraries get
one piece per worker too (:func:`double_many`).

Runs in the bench's main thread, the async contenders on the bench's event loop;
:func:`double_many` and ``double`` run in the workers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from .. import peers
from ..rows import Result, Workload
from ..runner import Bench, Entry, equal
from ..sizes import Sizes
from .tiny_tasks import double

__all__ = ["PPE_MAP", "double_many", "run", "workload"]

PPE_MAP = "ProcessPoolExecutor.map"
"""The name of the hand-tuned executor row."""


def double_many(items: Sequence[int]) -> list[int]:
    """``[double(x) for x in items]``: one hand-made piece of the map."""
    return [double(x) for x in items]


def _meets(row: Result) -> bool:
    ratio = row.figures.get("vs_ppe_map")
    return ratio is not None and ratio <= 0.5


def workload(sizes: Sizes) -> Workload:
    """Title, description and bar of ``tiny_map`` at these sizes."""
    n = sizes.tiny_map
    return Workload(
        "tiny_map",
        f"amap over {n:,} tiny items",
        f"amap(double, range({n:,})); run_in_executor: one piece per worker;"
        f" {PPE_MAP}: executor.map(double, items, chunksize=n / (4 × workers))",
        "≤ ½ of PPE.map's time [≤ 2 × sequential's]",
        _meets,
    )


def _pieces(items: Sequence[int], workers: int) -> list[Sequence[int]]:
    n = len(items)
    return [items[n * i // workers : n * (i + 1) // workers] for i in range(workers)]


def run(bench: Bench) -> list[Result]:
    """``amap`` of tiny items against a loop, pieces by hand and the executor's map."""
    items = list(range(bench.sizes.tiny_map))
    chunksize = max(1, -(-len(items) // (4 * bench.workers)))

    async def by_hand() -> list[int]:
        loop = asyncio.get_running_loop()
        answers = await asyncio.gather(
            *(
                loop.run_in_executor(bench.executor, double_many, piece)
                for piece in _pieces(items, bench.workers)
            )
        )
        return [value for answer in answers for value in answer]

    entries: list[Entry] = [
        ("sequential", bench.blocking(lambda: [double(x) for x in items])),
        ("aiopar", bench.awaiting(lambda: bench.pool.amap(double, items))),
        ("run_in_executor", bench.awaiting(by_hand)),
        (
            PPE_MAP,
            bench.blocking(lambda: list(bench.executor.map(double, items, chunksize=chunksize))),
        ),
    ]
    rows = bench.measure("tiny_map", entries, equal)
    rows += bench.others(
        "tiny_map",
        lambda s: bench.blocking(
            lambda: [v for part in s.map(double_many, _pieces(items, bench.workers)) for v in part]
        ),
        equal,
        libraries=peers.SMALL_TASKS,
    )
    by_name = {row.contender: row for row in rows}
    tuned, main = by_name[PPE_MAP], by_name["aiopar"]
    if tuned.status == "ok":
        tuned.note = f"chunksize={chunksize}"
        if main.status == "ok" and main.median_s and tuned.median_s:
            main.figures["vs_ppe_map"] = ratio = main.median_s / tuned.median_s
            main.note = f"×{ratio:.2f} of {PPE_MAP}'s time"
    return rows
