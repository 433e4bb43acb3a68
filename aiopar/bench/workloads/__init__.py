"""The workloads of ``python -m aiopar bench``, one module each, in the order they run.

Each module holds the functions its tasks run in the workers (at module level, so
workers import them by name), ``workload(sizes)`` (its title, description and bar) and
``run(bench)`` (its rows, measured through :class:`aiopar.bench.runner.Bench`).
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

from ..rows import Result, Workload
from ..runner import Bench
from ..sizes import Sizes
from . import (
    cold_start,
    crawl,
    dask_chunks,
    dask_dag,
    loop_lag,
    matrix_dag,
    put,
    py_tasks,
    test_suite,
    tiny_graph,
    tiny_map,
    tiny_tasks,
    vec,
    vec_heavy,
)

__all__ = ["CLUSTER_WORKLOADS", "EXTRA_WORKLOADS", "WORKLOADS", "catalog", "runner_of"]

_MODULES: dict[str, ModuleType] = {
    "vec": vec,
    "vec_heavy": vec_heavy,
    "loop_lag": loop_lag,
    "matrix_dag": matrix_dag,
    "py_tasks": py_tasks,
    "put": put,
    "tiny_tasks": tiny_tasks,
    "tiny_graph": tiny_graph,
    "tiny_map": tiny_map,
    "cold_start": cold_start,
}

WORKLOADS = tuple(_MODULES)
"""The workload names, in the order they run (the keys of the JSON output)."""

_EXTRA_MODULES: dict[str, ModuleType] = {
    "test_suite": test_suite,
    "dask_dag": dask_dag,
    "dask_chunks": dask_chunks,
    "crawl": crawl,
}

EXTRA_WORKLOADS = tuple(_EXTRA_MODULES)
"""Workloads that run only when named with ``--only``, after the others."""

CLUSTER_WORKLOADS = ("dask_dag", "dask_chunks")
"""The extra workloads that run on a Dask cluster: what ``--cluster ADDRESS`` runs when
``--only`` does not name workloads."""


def catalog(sizes: Sizes) -> dict[str, Workload]:
    """Every workload's title, description and bar at these sizes, by name."""
    every = {**_MODULES, **_EXTRA_MODULES}
    return {name: module.workload(sizes) for name, module in every.items()}


def runner_of(name: str) -> Callable[[Bench], list[Result]]:
    """The function that measures the workload ``name`` and returns its rows."""
    run: Callable[[Bench], list[Result]] = {**_MODULES, **_EXTRA_MODULES}[name].run
    return run
