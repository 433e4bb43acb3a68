"""Workload ``tiny_graph``: a random task graph of thousands of tiny tasks.

Node ``k`` depends on 0 to 3 earlier nodes, drawn with a fixed seed (:func:`graph`),
and computes :func:`node` from their results. aiopar builds it with ``submit`` and
:class:`aiopar.TaskRef` arguments; ``run_in_executor`` with one asyncio task per node
that awaits its inputs, then runs the node; Ray and Dask with their task references.
The notes give tasks per second.

Runs in the bench's main thread, the async contenders on the bench's event loop;
:func:`node` runs in the workers.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from .. import peers
from ..rows import Result, Workload
from ..runner import Bench, Entry, equal
from ..sizes import Sizes

__all__ = ["MUST_TASKS_PER_S", "graph", "node", "run", "workload"]

MUST_TASKS_PER_S = 30_000.0
"""The bar: at least this many tasks per second through the whole graph."""

SEED = 13


def node(k: int, *inputs: int) -> int:
    """Node ``k`` of the graph: ``(k + sum(inputs)) % 1_000_003``, a tiny task."""
    return (k + sum(inputs)) % 1_000_003


def graph(nodes: int, seed: int = SEED) -> list[tuple[int, ...]]:
    """For each node, the earlier nodes it depends on: 0 to 3 of them, drawn at random
    with ``seed`` (the same graph on every run and machine)."""
    rng = random.Random(seed)
    inputs = []
    for k in range(nodes):
        count = rng.randint(0, min(3, k))
        inputs.append(tuple(sorted(rng.sample(range(k), count))))
    return inputs


def _meets(row: Result) -> bool:
    rate = row.figures.get("tasks_per_s")
    return rate is not None and rate >= MUST_TASKS_PER_S


def workload(sizes: Sizes) -> Workload:
    """Title, description and bar of ``tiny_graph`` at these sizes."""
    n = sizes.tiny_graph
    return Workload(
        "tiny_graph",
        f"random DAG of {n:,} tiny tasks",
        f"{n:,} nodes, each node(k, *inputs) depending on 0-3 earlier ones (seed {SEED});"
        " aiopar: submit with TaskRef arguments, then gather of all; run_in_executor: an"
        " asyncio task per node awaiting its inputs; notes: tasks/s",
        f"≥ {MUST_TASKS_PER_S:,.0f} tasks/s",
        _meets,
    )


def run(bench: Bench) -> list[Result]:
    """The graph through aiopar's task references, asyncio by hand, and a plain loop."""
    inputs = graph(bench.sizes.tiny_graph)
    pool = bench.pool

    def in_order() -> list[int]:
        values: list[int] = []
        for k, deps in enumerate(inputs):
            values.append(node(k, *(values[j] for j in deps)))
        return values

    async def submitted() -> list[int]:
        refs: list[Any] = []
        for k, deps in enumerate(inputs):
            refs.append(pool.submit(node, k, *(refs[j] for j in deps)))
        return await pool.gather(*refs)

    async def by_hand() -> list[int]:
        loop = asyncio.get_running_loop()
        tasks: list[asyncio.Future[int]] = []

        async def one(k: int, deps: tuple[int, ...]) -> int:
            values = [await tasks[j] for j in deps]
            return await loop.run_in_executor(bench.executor, node, k, *values)

        for k, deps in enumerate(inputs):
            tasks.append(asyncio.ensure_future(one(k, deps)))
        return list(await asyncio.gather(*tasks))

    def with_refs(session: Any) -> list[int]:
        handles: list[Any] = []
        for k, deps in enumerate(inputs):
            handles.append(session.submit(node, k, *(handles[j] for j in deps)))
        return session.get(handles)  # type: ignore[no-any-return]

    entries: list[Entry] = [
        ("sequential", bench.blocking(in_order)),
        ("aiopar", bench.awaiting(submitted)),
        ("run_in_executor", bench.awaiting(by_hand)),
    ]
    rows = bench.measure("tiny_graph", entries, equal)
    # aiomultiprocess, joblib and mpire have no task references: nothing comparable
    rows += bench.others(
        "tiny_graph",
        lambda s: bench.blocking(lambda: with_refs(s)),
        equal,
        libraries=peers.GRAPHS,
    )
    for row in rows:
        if row.status == "ok" and row.median_s:
            row.figures["tasks_per_s"] = rate = len(inputs) / row.median_s
            row.note = f"{rate:,.0f} tasks/s"
    return rows
