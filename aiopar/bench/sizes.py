"""How big each workload of ``python -m aiopar bench`` is: the full sizes and ``--quick``."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FULL", "QUICK", "Sizes"]


@dataclass(frozen=True)
class Sizes:
    """How big each workload is; the defaults are the full benchmark."""

    vec_len: int = 20_000_000  # 160 MB of float64, for vec and for each map of loop_lag
    heavy_len: int = 4_000_000
    heavy_rounds: int = 20
    matrix: int = 2000
    tasks: int = 64
    task_iterations: int = 300_000  # about 17 ms of pure Python on this machine
    put_len: int = 10_000_000  # 80 MB of float64, sent to each of put_tasks tasks
    put_tasks: int = 64
    tiny_tasks: int = 5_000  # submit + gather of this many double(i)
    tiny_graph: int = 10_000  # nodes of the random task graph
    tiny_map: int = 100_000  # items of amap(double, ...)
    crawl_requests: int = 2_000  # pages the crawl workload fetches and parses
    crawl_delay_s: float = 0.02  # the crawl site's wait before each answer
    suite_tests: int = 50  # tests of the test_suite workload's pytest-asyncio suite
    latency_calls: int = 200  # one task at a time on an idle pool, for the latency figure
    tick_s: float = 0.001
    # Pause before the timed runs of a workload (loop_lag: before each contender's
    # runs, back to back). On a VM with free page reporting, memory a process frees is
    # handed back to the hypervisor seconds later, in batches, and a batch can stall the
    # vCPUs for 10-35 ms: after numpy temporaries and pickles of gigabytes (sequential
    # and run_in_executor runs, warm-up runs) that lands in the next timed run, a delay
    # that is not its own. Measured here: after two vec() over 160 MB, batches from 2.1
    # to 9.2 s later.
    settle_s: float = 10.0


FULL = Sizes()
QUICK = Sizes(
    vec_len=1_000_000,
    heavy_len=200_000,
    matrix=300,
    tasks=16,
    put_len=1_000_000,
    put_tasks=16,
    tiny_tasks=500,
    tiny_graph=500,
    tiny_map=10_000,
    crawl_requests=64,
    suite_tests=5,
    latency_calls=20,
    settle_s=0.0,
)
"""The sizes of ``--quick``, for tests: 24 s and 38 s for ``--repeat 1`` on 2 busy cores
(before the put workload was added)."""
