"""``python -m aiopar bench``: aiopar beside the sequential code and the hand-written way.

Every workload runs, in one run of one process, through each contender:

* ``sequential``: the plain single-process code (numpy, or a Python loop);
* ``aiopar``: one :class:`aiopar.Pool` (one worker per core, started and warmed before
  any timing, as a server would);
* ``run_in_executor``: raw asyncio, as written by hand: the work cut into one
  contiguous piece per worker, each sent with ``loop.run_in_executor`` to a warmed
  ``ProcessPoolExecutor`` (forkserver, one worker per core), the answers joined;
* ``bare processes`` (``py_tasks`` only): one plain process per core pulling task numbers
  from a shared counter, no pool at all: the ceiling of what the machine gives at that
  moment, measured in the same rounds;
* ``joblib``, ``ray``, ``dask``, ``mpire``: only when importable (each started for its
  workload, warmed, and stopped after it); otherwise their rows say "not installed".

How the contenders of one workload are measured::

    each contender once, untimed ──► its answer checked ──► --repeat rounds, every contender
      (warm-up: its workers import     against the           once per round (interleaved, so
       the function, pages get          sequential one        load from elsewhere hits all
       mapped)                          (a wrong answer       alike) ──► median seconds,
                                        fails the row)        speedup = median over rounds
                                                              of t_seq / t_x

The order of the contenders turns by one place from round to round (see _measure);
py_tasks runs 3 × --repeat rounds (see PY_TASKS_ROUNDS).

Memory ("peak +MiB") is the high-water resident set size (``VmHWM``, what
``getrusage().ru_maxrss`` reports) of this process and of every descendant process
(the workers), each reset through ``/proc/PID/clear_refs`` before a timed run, minus
the resident size it had then, summed over the processes: the extra memory the run
needed, an upper bound when the processes peak at different moments. Without a
resettable ``/proc`` (not Linux) it falls back to the growth of ``ru_maxrss`` of self
and children, which only shows new all-time peaks. The cold start rows report the
whole peak of the new interpreter and its workers instead.

The functions sent to workers live at module level here, so workers import them by
name; heavy imports (joblib, ray, dask, mpire) happen inside functions, and only when
those packages are installed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import hashlib
import importlib
import importlib.util
import json
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

import aiopar
from aiopar import _bench_suite

__all__ = [
    "FULL",
    "QUICK",
    "THIRD_PARTY",
    "WORKLOADS",
    "Sizes",
    "array_sum",
    "array_sums",
    "call",
    "create_matrix",
    "main",
    "multiply",
    "py_work",
    "py_work_many",
    "sleep_for",
    "vec",
    "vec_heavy",
]

FloatArray = npt.NDArray[np.float64]

WORKLOADS = ("vec", "vec_heavy", "loop_lag", "matrix_dag", "py_tasks", "put", "cold_start")
"""The workload names, in the order they run (the keys of the JSON output)."""
EXTRA_WORKLOADS = ("test_suite",)
"""Workloads run only when named with ``--only`` (see ``_bench_suite.py``)."""

# py_tasks runs this many times --repeat rounds: its runs are short (about 4.6 s a round for
# all contenders) and its ratios the noisiest, each vCPU of a cloud machine changing speed
# by a third from one second to the next; the median of more rounds moves less.
PY_TASKS_ROUNDS = 3

THIRD_PARTY = ("joblib", "ray", "dask", "mpire")
"""Other libraries measured when importable."""

# --- functions that run in the workers -------------------------------------------------


def vec(x: FloatArray) -> FloatArray:
    """``sqrt(|x|) * sin(x) + cos(x)**2``, elementwise: a cheap numpy function."""
    return np.sqrt(np.abs(x)) * np.sin(x) + np.square(np.cos(x))


def vec_heavy(x: FloatArray, rounds: int = 20) -> FloatArray:
    """``y = sin(y) + cos(y)``, ``rounds`` times from ``y = x``: a heavier numpy function."""
    y = x
    for _ in range(rounds):
        y = np.sin(y) + np.cos(y)
    return y


def array_sum(x: FloatArray, seed: int) -> float:
    """``x.sum() + seed``: one read of a big array, for the put workload."""
    return float(x.sum()) + seed


def array_sums(x: FloatArray, seeds: Sequence[int]) -> list[float]:
    """``[array_sum(x, seed) for seed in seeds]``: one hand-made chunk of put tasks."""
    return [array_sum(x, seed) for seed in seeds]


def create_matrix(size: int, seed: int) -> FloatArray:
    """A ``size`` x ``size`` matrix of standard normal numbers drawn from ``seed``."""
    return np.random.default_rng(seed).normal(size=(size, size))


def multiply(x: FloatArray, y: FloatArray) -> FloatArray:
    """The matrix product ``x @ y``."""
    return x @ y


def py_work(seed: int, iterations: int) -> int:
    """A pure-Python loop holding the GIL; 300,000 iterations take about 17 ms here."""
    total = seed
    for i in range(iterations):
        total = (total * 31 + i) % 1_000_003
    return total


def py_work_many(seeds: Sequence[int], iterations: int) -> list[int]:
    """``[py_work(seed, iterations) for seed in seeds]``: one hand-made chunk of tasks."""
    return [py_work(seed, iterations) for seed in seeds]


def bare_worker(conn: Any, counter: Any, lock: Any, tasks: int, iterations: int) -> None:
    """A process of :class:`BareProcesses`: on each go, pull task numbers until none are
    left and send back ``{number: py_work(number, iterations)}``; stop on None."""
    while conn.recv() is not None:
        done = {}
        while True:
            with lock:
                number = counter.value
                counter.value = number + 1
            if number >= tasks:
                break
            done[number] = py_work(number, iterations)
        conn.send(done)


class BareProcesses:
    """The py_tasks workload on worker processes with nothing around them: each pulls
    the next task number from a shared counter, so a faster CPU takes more tasks. No
    pool, no queue, no result path: what the machine itself gives that many processes
    at that moment, the ceiling any pool can reach."""

    def __init__(self, workers: int, tasks: int, iterations: int) -> None:
        self._workers = workers
        self._tasks = tasks
        self._iterations = iterations
        ctx = multiprocessing.get_context("forkserver")
        self._lock = ctx.Lock()
        self._counter = ctx.RawValue("q", 0)
        self._conns: list[Any] = []
        self._processes: list[Any] = []

    def _start(self) -> None:
        ctx = multiprocessing.get_context("forkserver")
        for _ in range(self._workers):
            ours, theirs = ctx.Pipe()
            process = ctx.Process(
                target=bare_worker,
                args=(theirs, self._counter, self._lock, self._tasks, self._iterations),
                daemon=True,
            )
            process.start()
            theirs.close()
            self._conns.append(ours)
            self._processes.append(process)

    def run(self) -> list[int]:
        """Compute all tasks once; blocks. The first run starts the processes (the
        bench's untimed run, where a failure to start becomes the row's status)."""
        if not self._processes:
            self._start()
        with self._lock:
            self._counter.value = 0
        for conn in self._conns:
            conn.send(True)
        done: dict[int, int] = {}
        for conn in self._conns:
            done.update(conn.recv())
        return [done[number] for number in range(self._tasks)]

    def close(self) -> None:
        """Stop the processes; blocks."""
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.send(None)
        for process in self._processes:
            process.join(10)
            if process.is_alive():
                process.kill()
                process.join()
        for conn in self._conns:
            conn.close()


def sleep_for(seconds: float) -> float:
    """Sleep (blocking), then return ``seconds``: starts and warms workers."""
    time.sleep(seconds)
    return seconds


def call(func: Callable[..., Any], *args: Any) -> Any:
    """``func(*args)``: lets Ray run any picklable callable with one remote function."""
    return func(*args)


# --- sizes ---------------------------------------------------------------------------------


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
    settle_s=0.0,
)
"""The sizes of ``--quick``, for tests: 24 s and 38 s for ``--repeat 1`` on 2 busy cores
(before the put workload was added)."""

# --- results ---------------------------------------------------------------------------------


@dataclass
class Result:
    """One row of the table: one contender on one workload."""

    workload: str
    contender: str
    status: str = "ok"  # "ok", "not installed", "failed", "wrong result"
    runs_s: list[float] = field(default_factory=list)
    peak_mib: float | None = None
    lag_ms: dict[str, float] | None = None
    note: str = ""
    speedup: float | None = None
    met: bool | None = None
    in_rounds: bool = True  # runs_s[i] was timed in round i, beside the other rows' i-th

    @property
    def median_s(self) -> float | None:
        """Median of the timed runs, or None when the contender did not run."""
        return statistics.median(self.runs_s) if self.runs_s else None


@dataclass(frozen=True)
class Workload:
    """A workload's title, what it means, and the bar aiopar has to meet."""

    name: str
    title: str
    description: str
    bar: str
    meets: Callable[[Result], bool]


def _at_least(ratio: float) -> Callable[[Result], bool]:
    return lambda r: r.speedup is not None and r.speedup >= ratio


def _lag_bar(r: Result) -> bool:
    return r.lag_ms is not None and r.lag_ms["p99"] <= 5.0 and r.lag_ms["max"] <= 25.0


def _cold_bar(r: Result) -> bool:
    return r.median_s is not None and r.median_s <= 0.5


def _workloads(sizes: Sizes) -> dict[str, Workload]:
    mb = sizes.vec_len * 8 / 1e6
    return {
        "vec": Workload(
            "vec",
            f"amap_chunks(vec, {_count(sizes.vec_len)} float64)",
            f"vec(x) = sqrt(|x|)*sin(x) + cos(x)**2 over {mb:.0f} MB; aiopar cuts its default"
            " pieces (16 MiB at most), the others one piece per worker",
            "≥ ×1.5 [×1.7]",
            _at_least(1.5),
        ),
        "vec_heavy": Workload(
            "vec_heavy",
            f"amap_chunks(vec_heavy, {_count(sizes.heavy_len)} float64)",
            f"{sizes.heavy_rounds} rounds of y = sin(y) + cos(y) over"
            f" {sizes.heavy_len * 8 / 1e6:.0f} MB",
            "≥ ×1.8 [×1.9]",
            _at_least(1.8),
        ),
        "loop_lag": Workload(
            "loop_lag",
            f"1 ms ticker during 2 maps of {mb:.0f} MB",
            f"two amap_chunks(vec, {mb:.0f} MB) started together while a 1 ms ticker runs"
            " on the same loop; lag = how late each tick wakes (all timed runs pooled)",
            "p99 ≤ 5 ms, max ≤ 25 ms",
            _lag_bar,
        ),
        "matrix_dag": Workload(
            "matrix_dag",
            f"matrix DAG, create_matrix({sizes.matrix}²) ×2 → multiply",
            "two create_matrix tasks feeding multiply through submit() refs",
            "≥ ×0.85",
            _at_least(0.85),
        ),
        "py_tasks": Workload(
            "py_tasks",
            f"{sizes.tasks} tasks of ~17 ms pure Python",
            f"amap(py_work, range({sizes.tasks})); py_work loops {sizes.task_iterations:,}"
            " times holding the GIL",
            "≥ ×1.9",
            _at_least(1.9),
        ),
        "put": Workload(
            "put",
            f"one {sizes.put_len * 8 / 1e6:.0f} MB array to {sizes.put_tasks} tasks",
            f"{sizes.put_tasks} tasks array_sum(x, i) over one {sizes.put_len * 8 / 1e6:.0f} MB"
            " array x: aiopar puts x once, then submits (array_sum, ref, i);"
            " 'aiopar no put' submits x itself, copied for each task;"
            " run_in_executor sends x once per worker, with that worker's share of the tasks",
            "≥ ×1.0",
            _at_least(1.0),
        ),
        "cold_start": Workload(
            "cold_start",
            "cold start: import → first amap result",
            "a new interpreter (subprocess) from before `import aiopar` to the first"
            " amap(abs, [-1, -2, -3]) result, workers started from nothing",
            "≤ 0.5 s",
            _cold_bar,
        ),
    }


def _count(n: int) -> str:
    return f"{n / 1e6:g}M" if n >= 1_000_000 else f"{n / 1e3:g}k"


# --- measuring memory and loop lag ---------------------------------------------------------


def _process_tree() -> list[int]:
    """This process and all its descendants, from ``/proc`` (Linux)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as file:
                stat = file.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])  # fields after "(comm)"
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [os.getpid()]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


def _status_kib(pid: int, key: str) -> int | None:
    """A ``kB`` field (``VmRSS``, ``VmHWM``) of ``/proc/PID/status``, or None if gone."""
    try:
        with open(f"/proc/{pid}/status") as file:
            for line in file:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def _reset_peak(pid: int) -> None:
    with open(f"/proc/{pid}/clear_refs", "w") as file:
        file.write("5")  # 5: reset the peak RSS (VmHWM) to the current RSS


class PeakMemory:
    """Extra peak memory of a run, for this process and its descendants; see module doc."""

    def __init__(self) -> None:
        try:
            _reset_peak(os.getpid())
            self.method = (
                "VmHWM (= ru_maxrss) of this process and each descendant, reset through"
                " /proc/PID/clear_refs before each timed run, minus its RSS at that moment,"
                " summed over processes"
            )
            self._proc = True
        except OSError:
            self.method = "growth of getrusage ru_maxrss, self + children (only new peaks show)"
            self._proc = False
        self._base: dict[int, int] = {}

    @staticmethod
    def _maxrss_kib() -> int:
        import resource  # not on Windows; only needed without /proc

        self_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        children_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        scale = 1024 if sys.platform == "darwin" else 1  # bytes on macOS
        return (self_kib + children_kib) // scale

    def start(self) -> None:
        """Reset the peaks; call right before the timed run."""
        self._base = {}
        if not self._proc:
            self._base[0] = self._maxrss_kib()
            return
        for pid in _process_tree():
            try:
                _reset_peak(pid)
            except OSError:
                continue
            rss = _status_kib(pid, "VmRSS")
            if rss is not None:
                self._base[pid] = rss

    def stop(self) -> float:
        """MiB needed by the run above what the processes held when it started."""
        if not self._proc:
            return max(0, self._maxrss_kib() - self._base.get(0, 0)) / 1024
        total = 0
        for pid, base in self._base.items():
            peak = _status_kib(pid, "VmHWM")
            if peak is not None:
                total += max(0, peak - base)
        return total / 1024


def _cpu_seconds() -> tuple[float, float, float]:
    """Busy and stolen CPU seconds of the machine, and CPU seconds of this process tree.

    All zero where ``/proc`` is missing. Children that ended count through ``cutime``.
    """
    try:
        tick = os.sysconf("SC_CLK_TCK")
        with open("/proc/stat") as file:
            fields = [int(value) for value in file.readline().split()[1:]]
        ours = 0
        for pid in _process_tree():
            with contextlib.suppress(OSError, ValueError, IndexError):
                with open(f"/proc/{pid}/stat", "rb") as file:
                    stat = file.read()
                ours += sum(int(v) for v in stat[stat.rindex(b")") + 2 :].split()[11:15])
    except (OSError, ValueError):
        return 0.0, 0.0, 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq) / tick, steal / tick, ours / tick


class CpuWatch:
    """How much of the machine other processes used (and the hypervisor stole) meanwhile."""

    def __init__(self) -> None:
        self._start = _cpu_seconds()
        self._since = time.perf_counter()

    def report(self) -> dict[str, float]:
        """Shares of all CPUs since construction: ``others`` and ``steal``, 0 to 1."""
        busy, steal, ours = (b - a for a, b in zip(self._start, _cpu_seconds(), strict=True))
        capacity = (time.perf_counter() - self._since) * (os.cpu_count() or 1)
        return {"others": max(0.0, busy - ours) / capacity, "steal": steal / capacity}


class _Ticker:
    """Sleeps ``interval`` over and over on the event loop, noting how late it wakes."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.lags: list[float] = []
        self._due = time.perf_counter()

    async def run(self) -> None:
        while True:
            self._due = time.perf_counter() + self.interval
            await asyncio.sleep(self.interval)
            self.lags.append(max(0.0, time.perf_counter() - self._due))

    def finish(self) -> None:
        """Count the tick still asleep if it is already overdue (the loop was blocked)."""
        late = time.perf_counter() - self._due
        if late > 0:
            self.lags.append(late)


def _lag_stats(lags_s: Sequence[float]) -> dict[str, float]:
    ms = np.asarray(lags_s, dtype=np.float64) * 1e3
    if ms.size == 0:
        return {"p50": 0.0, "p99": 0.0, "max": 0.0, "ticks": 0.0}
    return {
        "p50": float(np.percentile(ms, 50)),
        "p99": float(np.percentile(ms, 99)),
        "max": float(ms.max()),
        "ticks": float(ms.size),
    }


@dataclass
class Sample:
    """One run of a contender: seconds, its answer, and what else was measured."""

    seconds: float
    value: Any
    lags: list[float] | None = None
    peak_mib: float | None = None  # set by runs that measure memory themselves
    note: str = ""


# --- other libraries ---------------------------------------------------------------------------


class _Joblib:
    def __init__(self, workers: int) -> None:
        joblib = importlib.import_module("joblib")
        self._parallel = joblib.Parallel(n_jobs=workers)
        self._delayed = joblib.delayed

    def map(self, func: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        return list(self._parallel(self._delayed(func)(item) for item in items))

    def close(self) -> None:
        loky = importlib.import_module("joblib.externals.loky")
        loky.get_reusable_executor().shutdown(wait=True)


class _Ray:
    def __init__(self, workers: int) -> None:
        self._ray = importlib.import_module("ray")
        self._ray.init(
            num_cpus=workers,
            include_dashboard=False,
            log_to_driver=False,
            logging_level="ERROR",
            ignore_reinit_error=True,
        )
        self._call = self._ray.remote(call)

    def map(self, func: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        return list(self._ray.get([self._call.remote(func, item) for item in items]))

    def dag(self, size: int) -> FloatArray:
        x = self._call.remote(create_matrix, size, 1)
        y = self._call.remote(create_matrix, size, 2)
        return self._ray.get(self._call.remote(multiply, x, y))  # type: ignore[no-any-return]

    def close(self) -> None:
        self._ray.shutdown()


class _Dask:
    def __init__(self, workers: int) -> None:
        distributed = importlib.import_module("dask.distributed")
        self._cluster = distributed.LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        )
        self._client = distributed.Client(self._cluster)

    def map(self, func: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        args: Any = items
        if items and isinstance(items[0], np.ndarray):
            args = self._client.scatter(list(items), hash=False)  # dask: scatter big data
        return list(self._client.gather(self._client.map(func, args, pure=False)))

    def dag(self, size: int) -> FloatArray:
        x = self._client.submit(create_matrix, size, 1, pure=False)
        y = self._client.submit(create_matrix, size, 2, pure=False)
        return self._client.submit(multiply, x, y, pure=False).result()  # type: ignore[no-any-return]

    def close(self) -> None:
        self._client.close()
        self._cluster.close()


class _Mpire:
    def __init__(self, workers: int) -> None:
        mpire = importlib.import_module("mpire")
        self._pool = mpire.WorkerPool(n_jobs=workers, start_method="forkserver", keep_alive=True)

    def map(self, func: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        # One-element tuples: mpire unpacks tuples into arguments and would cut arrays.
        args = [(item,) for item in items]
        return list(self._pool.map(func, args, concatenate_numpy_output=False))

    def close(self) -> None:
        self._pool.terminate()


_SESSIONS: dict[str, tuple[str, Callable[[int], Any]]] = {
    "joblib": ("joblib", _Joblib),
    "ray": ("ray", _Ray),
    "dask": ("distributed", _Dask),
    "mpire": ("mpire", _Mpire),
}


def _installed(name: str) -> bool:
    module = _SESSIONS[name][0]
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


# --- cold start: code run in a new interpreter --------------------------------------------

_COLD_PROLOGUE = "import time\n_t0 = time.perf_counter()\n"
_COLD_EPILOGUE = """
_t1 = time.perf_counter()
assert list(_result) == [1, 2, 3], _result
import json, os
def _kib(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0
def _tree():
    kids = {}
    for e in os.listdir("/proc") if os.path.isdir("/proc") else ():
        if e.isdigit():
            try:
                with open(f"/proc/{e}/stat", "rb") as f:
                    s = f.read()
            except OSError:
                continue
            kids.setdefault(int(s[s.rindex(b")") + 2:].split()[1]), []).append(int(e))
    out, todo = [], [os.getpid()]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, ()))
    return out
print(json.dumps({"seconds": _t1 - _t0, "peak_kib": sum(_kib(p, "VmHWM") for p in _tree())}),
      flush=True)
"""
_ITEMS = "[-1, -2, -3]"
_COLD_CODE: dict[str, tuple[str, str]] = {  # contender: (timed code, clean-up code)
    "sequential": (f"_result = list(map(abs, {_ITEMS}))", ""),
    "aiopar": (
        "import asyncio\nimport aiopar\n"
        f"async def _main():\n    return await aiopar.amap(abs, {_ITEMS})\n"
        "_result = asyncio.run(_main())",
        "",
    ),
    "run_in_executor": (
        "import asyncio, multiprocessing\nfrom concurrent.futures import ProcessPoolExecutor\n"
        "_ctx = multiprocessing.get_context('forkserver')\n"
        "_ex = ProcessPoolExecutor({workers}, mp_context=_ctx)\n"
        "async def _main():\n    loop = asyncio.get_running_loop()\n"
        f"    return await asyncio.gather(*(loop.run_in_executor(_ex, abs, x) for x in {_ITEMS}))\n"
        "_result = asyncio.run(_main())",
        "_ex.shutdown()",
    ),
    "joblib": (
        "from joblib import Parallel, delayed\n"
        f"_result = Parallel(n_jobs={{workers}})(delayed(abs)(x) for x in {_ITEMS})",
        "",
    ),
    "ray": (
        "import ray\nray.init(num_cpus={workers}, include_dashboard=False, log_to_driver=False,"
        " logging_level='ERROR')\n"
        "@ray.remote\ndef _f(x):\n    return abs(x)\n"
        f"_result = ray.get([_f.remote(x) for x in {_ITEMS}])",
        "ray.shutdown()",
    ),
    "dask": (
        "from dask.distributed import Client, LocalCluster\n"
        "_cluster = LocalCluster(n_workers={workers}, threads_per_worker=1, processes=True,"
        " dashboard_address=None)\n_client = Client(_cluster)\n"
        f"_result = _client.gather(_client.map(abs, {_ITEMS}))",
        "_client.close()\n_cluster.close()",
    ),
    "mpire": (
        "from mpire import WorkerPool\n_pool = WorkerPool(n_jobs={workers})\n"
        f"_result = _pool.map(abs, {_ITEMS})",
        "_pool.terminate()",
    ),
}


def _cold_start(contender: str, workers: int) -> Sample:
    """Run the cold-start script of ``contender`` in a new interpreter; blocks."""
    timed, cleanup = _COLD_CODE[contender]
    code = _COLD_PROLOGUE + timed.format(workers=workers) + "\n" + _COLD_EPILOGUE + cleanup
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    whole = time.perf_counter() - start
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        errors = proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"]
        raise RuntimeError(f"cold start of {contender} failed: {errors[-1]}")
    report = json.loads(lines[-1])
    return Sample(
        float(report["seconds"]),
        True,
        peak_mib=report["peak_kib"] / 1024 or None,
        note=f"whole subprocess {whole:.2f} s; memory: all of its processes",
    )


# --- the benchmark ----------------------------------------------------------------------------


def close_enough(value: Any, expected: Any) -> bool:
    """Whether two answers (arrays, or sequences of arrays) agree to ``rtol=1e-9``."""
    got, want = np.asarray(value), np.asarray(expected)
    return got.shape == want.shape and bool(np.allclose(got, want, rtol=1e-9, atol=1e-12))


def _equal(value: Any, expected: Any) -> bool:
    return list(value) == list(expected)


def _failure(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:160]


Entry = tuple[str, Callable[[], Sample]]
"""A contender's name and a callable that runs it once (blocking) and returns a Sample."""


class Bench:
    """Owns the pools of one benchmark run and measures each workload; see module doc.

    Every method blocks until its runs are done; async contenders run on a private
    event loop (an :class:`asyncio.Runner`), so third-party libraries with their own
    event loops (Dask) are called from plain synchronous code.
    """

    def __init__(
        self,
        sizes: Sizes,
        repeat: int,
        *,
        loop: str = "asyncio",
        progress: Callable[[str], None] = lambda line: None,
    ) -> None:
        self.sizes = sizes
        self.repeat = repeat
        self.memory = PeakMemory()
        self._progress = progress
        factory: Callable[[], asyncio.AbstractEventLoop] | None = None
        if loop == "uvloop":
            factory = importlib.import_module("uvloop").new_event_loop
        self._runner = asyncio.Runner(loop_factory=factory)
        self.pool = aiopar.Pool()
        self.workers = self.pool.workers
        self.pool.open()
        self.executor = ProcessPoolExecutor(
            self.workers, mp_context=multiprocessing.get_context("forkserver")
        )
        self._arrays: dict[int, FloatArray] = {}
        self._expected: Any = None

    def warm(self) -> float:
        """Start every worker of the pool and of the executor; return the seconds taken."""
        start = time.perf_counter()

        async def both() -> None:
            loop = asyncio.get_running_loop()
            await asyncio.gather(
                self.pool.gather(*(self.pool.submit(sleep_for, 0.05) for _ in range(self.workers))),
                *(
                    loop.run_in_executor(self.executor, sleep_for, 0.05)
                    for _ in range(self.workers)
                ),
            )

        self._runner.run(both())
        return time.perf_counter() - start

    def close(self) -> None:
        """Stop the workers and the event loop. Blocks."""
        self.pool.close()
        self.executor.shutdown(wait=True)
        self._runner.close()

    # ── running contenders ─────────────────────────────────────────────────────────

    def _sync(self, work: Callable[[], Any]) -> Callable[[], Sample]:
        def run() -> Sample:
            start = time.perf_counter()
            value = work()
            return Sample(time.perf_counter() - start, value)

        return run

    def _async(
        self, work: Callable[[], Awaitable[Any]], ticker: bool = False
    ) -> Callable[[], Sample]:
        async def timed() -> Sample:
            tick = _Ticker(self.sizes.tick_s)
            task = asyncio.ensure_future(tick.run()) if ticker else None
            if task:
                await asyncio.sleep(5 * self.sizes.tick_s)  # let it tick before timing
                tick.lags.clear()
            start = time.perf_counter()
            value = await work()
            seconds = time.perf_counter() - start
            if task:
                tick.finish()
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            return Sample(seconds, value, tick.lags if task else None)

        return lambda: self._runner.run(timed())

    def _measure(
        self,
        workload: str,
        entries: Sequence[Entry],
        same: Callable[[Any, Any], bool],
        *,
        reference: bool = True,
        grouped: bool = False,
        rounds: int | None = None,
    ) -> list[Result]:
        """Run each entry once untimed, then ``rounds`` (default ``repeat``) rounds of one
        timed run each.

        The untimed run warms the workers and checks the answer: with ``reference``,
        the first entry's answer is the one the others must match (``same``). Rounds
        interleave the contenders, so a burst of load elsewhere on the machine hits
        them all alike, in an order that turns by one place from round to round. The
        rounds start after a pause (``Sizes.settle_s``), so that the memory earlier work
        freed does not disturb them. ``grouped``: each contender's runs back to back
        instead, each group after such a pause, so that what one contender freed does
        not disturb the next one's measurement (loop_lag). Never raises: a failure
        becomes the row's status.
        """
        results = {name: Result(workload, name, in_rounds=not grouped) for name, _ in entries}
        lags: dict[str, list[float]] = {name: [] for name, _ in entries}
        live: list[Entry] = []
        if reference:
            self._expected = None
        for index, (name, run) in enumerate(entries):
            result = results[name]
            try:
                value = run().value
            except Exception as exc:
                result.status, result.note = "failed", _failure(exc)
                continue
            if reference and index == 0:
                self._expected = value
            elif self._expected is None or not same(value, self._expected):
                result.status = "wrong result"
                result.note = "its answer differs from the sequential one"
                continue
            del value
            live.append((name, run))
        rounds = self.repeat if rounds is None else rounds
        if grouped:  # each contender's runs back to back, after a pause
            order = [entry for entry in live for _ in range(rounds)]
        else:  # rounds: every contender once per round, after one pause
            # The order turns by one place each round: a run right after another one
            # can be slower (on this VM the one right after the sequential run was 3-8 %
            # slower), and no contender should always take that place.
            order = [
                live[(start + offset) % len(live)]
                for start in range(rounds)
                for offset in range(len(live))
            ]
            time.sleep(self.sizes.settle_s)
        previous = None
        for name, run in order:
            if (name, run) not in live:
                continue  # failed in an earlier run
            result = results[name]
            if grouped and name != previous:
                time.sleep(self.sizes.settle_s)
            previous = name
            try:
                self.memory.start()
                sample = run()
                peak = self.memory.stop() if sample.peak_mib is None else sample.peak_mib
            except Exception as exc:
                result.status, result.note = "failed", _failure(exc)
                result.runs_s.clear()
                live.remove((name, run))
                continue
            result.runs_s.append(sample.seconds)
            result.peak_mib = max(peak, result.peak_mib or 0.0)
            result.note = sample.note or result.note
            lags[name].extend(sample.lags or ())
            del sample
        for name, result in results.items():
            if result.status == "ok" and lags[name]:
                result.lag_ms = stats = _lag_stats(lags[name])
                result.note = (
                    f"lag p50 {stats['p50']:.2f} / p99 {stats['p99']:.2f} /"
                    f" max {stats['max']:.1f} ms ({int(stats['ticks'])} ticks)"
                )
            median = result.median_s
            self._progress(
                f"  {workload:<10} {name:<16} "
                + (f"{median:8.3f} s" if median is not None else f"{result.status:>10}")
                + (f"  {result.note}" if result.note else "")
            )
        return list(results.values())

    def _others(
        self,
        workload: str,
        use: Callable[[Any], Callable[[], Sample]],
        same: Callable[[Any, Any], bool],
        rounds: int | None = None,
    ) -> list[Result]:
        """Rows for joblib, ray, dask and mpire: each started, measured, then stopped."""
        results = []
        for name in THIRD_PARTY:
            if workload == "matrix_dag" and name in ("joblib", "mpire"):
                continue  # no task-graph API: nothing comparable to measure
            if not _installed(name):
                results.append(Result(workload, name, status="not installed"))
                continue
            try:
                session = _SESSIONS[name][1](self.workers)
            except Exception as exc:
                note = "could not start: " + _failure(exc)
                results.append(Result(workload, name, status="failed", note=note))
                continue
            try:
                session.map(sleep_for, [0.05] * self.workers)  # start and warm its workers
                rows = self._measure(
                    workload, [(name, use(session))], same, reference=False, rounds=rounds
                )
                for row in rows:  # timed after the others' rounds: no round to pair with
                    row.in_rounds = False
                results += rows
            except Exception as exc:
                results.append(Result(workload, name, status="failed", note=_failure(exc)))
            finally:
                session.close()
        return results

    def _array(self, length: int) -> FloatArray:
        if length not in self._arrays:
            self._arrays[length] = np.random.default_rng(length).standard_normal(length)
        return self._arrays[length]

    async def _by_hand(self, func: Callable[[Any], Any], data: FloatArray) -> FloatArray:
        """The hand-written way: one piece per worker through run_in_executor, joined here."""
        loop = asyncio.get_running_loop()
        pieces = np.array_split(data, self.workers)
        answers = await asyncio.gather(
            *(loop.run_in_executor(self.executor, func, piece) for piece in pieces)
        )
        return np.concatenate(answers)

    # ── the workloads ──────────────────────────────────────────────────────────────

    def _array_map(
        self, workload: str, func: Callable[[FloatArray], FloatArray], length: int
    ) -> list[Result]:
        data = self._array(length)
        entries: list[Entry] = [
            ("sequential", self._sync(lambda: func(data))),
            ("aiopar", self._async(lambda: self.pool.amap_chunks(func, data))),
            ("run_in_executor", self._async(lambda: self._by_hand(func, data))),
        ]

        def use(session: Any) -> Callable[[], Sample]:
            pieces = np.array_split(data, self.workers)
            return self._sync(lambda: np.concatenate(session.map(func, pieces)))

        rows = self._measure(workload, entries, close_enough)
        return rows + self._others(workload, use, close_enough)

    def vec(self) -> list[Result]:
        """``amap_chunks(vec, data)`` against ``vec(data)``."""
        return self._array_map("vec", vec, self.sizes.vec_len)

    def vec_heavy(self) -> list[Result]:
        """``amap_chunks(vec_heavy, data)`` against ``vec_heavy(data)``."""
        func = functools.partial(vec_heavy, rounds=self.sizes.heavy_rounds)
        return self._array_map("vec_heavy", func, self.sizes.heavy_len)

    def loop_lag(self) -> list[Result]:
        """Two maps at once beside a 1 ms ticker; the sequential row blocks the loop."""
        data = self._array(self.sizes.vec_len)

        async def in_loop() -> tuple[FloatArray, FloatArray]:
            return vec(data), vec(data)  # blocks the event loop: the ticker cannot run

        async def with_aiopar() -> list[FloatArray]:
            maps = (self.pool.amap_chunks(vec, data), self.pool.amap_chunks(vec, data))
            return list(await asyncio.gather(*maps))

        async def by_hand() -> list[FloatArray]:
            return list(await asyncio.gather(self._by_hand(vec, data), self._by_hand(vec, data)))

        entries: list[Entry] = [
            ("sequential", self._async(in_loop, ticker=True)),
            ("aiopar", self._async(with_aiopar, ticker=True)),
            ("run_in_executor", self._async(by_hand, ticker=True)),
        ]
        return self._measure("loop_lag", entries, close_enough, grouped=True)

    def matrix_dag(self) -> list[Result]:
        """Two ``create_matrix`` tasks feeding ``multiply``, through task references."""
        n = self.sizes.matrix

        async def with_aiopar() -> FloatArray:
            x = self.pool.submit(create_matrix, n, 1)
            y = self.pool.submit(create_matrix, n, 2)
            return await self.pool.submit(multiply, x, y)  # starts when x and y are done

        async def by_hand() -> FloatArray:
            loop = asyncio.get_running_loop()
            x, y = await asyncio.gather(
                loop.run_in_executor(self.executor, create_matrix, n, 1),
                loop.run_in_executor(self.executor, create_matrix, n, 2),
            )
            return await loop.run_in_executor(self.executor, multiply, x, y)

        entries: list[Entry] = [
            ("sequential", self._sync(lambda: multiply(create_matrix(n, 1), create_matrix(n, 2)))),
            ("aiopar", self._async(with_aiopar)),
            ("run_in_executor", self._async(by_hand)),
        ]
        rows = self._measure("matrix_dag", entries, close_enough)
        others = self._others("matrix_dag", lambda s: self._sync(lambda: s.dag(n)), close_enough)
        return rows + others

    def py_tasks(self) -> list[Result]:
        """Many ~17 ms pure-Python tasks: ``amap`` and ``submit`` against a plain loop."""
        iterations = self.sizes.task_iterations
        work = functools.partial(py_work, iterations=iterations)
        seeds = list(range(self.sizes.tasks))

        async def submitted() -> list[int]:
            refs = [self.pool.submit(py_work, seed, iterations) for seed in seeds]
            return await self.pool.gather(*refs)

        async def by_hand() -> list[int]:
            loop = asyncio.get_running_loop()
            w, n = self.workers, len(seeds)
            pieces = [seeds[n * i // w : n * (i + 1) // w] for i in range(w)]
            answers = await asyncio.gather(
                *(loop.run_in_executor(self.executor, py_work_many, p, iterations) for p in pieces)
            )
            return [value for answer in answers for value in answer]

        bare = BareProcesses(self.workers, len(seeds), iterations)  # started on first run
        entries: list[Entry] = [
            ("sequential", self._sync(lambda: [work(seed) for seed in seeds])),
            ("aiopar", self._async(lambda: self.pool.amap(work, seeds))),
            ("aiopar submit", self._async(submitted)),
            ("run_in_executor", self._async(by_hand)),
            ("bare processes", self._sync(bare.run)),
        ]
        try:
            rows = self._measure("py_tasks", entries, _equal, rounds=PY_TASKS_ROUNDS * self.repeat)
        finally:
            bare.close()
        for row in rows:
            if row.contender == "bare processes" and row.status == "ok":
                row.note = "the ceiling: no pool, each process pulls the next task"
            if row.contender == "sequential" and row.status == "ok":
                row.note = f"{len(row.runs_s)} rounds ({PY_TASKS_ROUNDS} × --repeat)"
        against_ceiling(rows, "bare processes")
        return rows + self._others(
            "py_tasks",
            lambda s: self._sync(lambda: s.map(work, seeds)),
            _equal,
            rounds=PY_TASKS_ROUNDS * self.repeat,
        )

    def put(self) -> list[Result]:
        """One big array to many tasks: placed once with ``put``, or sent with each task."""
        data = self._array(self.sizes.put_len)
        seeds = range(self.sizes.put_tasks)

        async def with_put() -> list[float]:
            ref = self.pool.put(data)
            return await self.pool.gather(*(self.pool.submit(array_sum, ref, i) for i in seeds))

        async def without_put() -> list[float]:
            return await self.pool.gather(*(self.pool.submit(array_sum, data, i) for i in seeds))

        async def by_hand() -> list[float]:  # one call (one copy of x) per worker
            loop = asyncio.get_running_loop()
            w, n = self.workers, len(seeds)
            pieces = [seeds[n * i // w : n * (i + 1) // w] for i in range(w)]
            answers = await asyncio.gather(
                *(loop.run_in_executor(self.executor, array_sums, data, p) for p in pieces)
            )
            return [value for answer in answers for value in answer]

        entries: list[Entry] = [
            ("sequential", self._sync(lambda: [array_sum(data, i) for i in seeds])),
            ("aiopar", self._async(with_put)),
            ("aiopar no put", self._async(without_put)),
            ("run_in_executor", self._async(by_hand)),
        ]
        rows = self._measure("put", entries, close_enough)
        for row in rows:
            if row.contender == "aiopar" and row.status == "ok":
                row.note = "put(x) once, then the ref to every task"
            if row.contender == "aiopar no put" and row.status == "ok":
                row.note = "x copied into shared memory for each task"
        return rows

    def cold_start(self) -> list[Result]:
        """A new interpreter from before ``import`` to the first result, per contender."""
        names = ["sequential", "aiopar", "run_in_executor"]
        names += [name for name in THIRD_PARTY if _installed(name)]
        entries = [(name, functools.partial(_cold_start, name, self.workers)) for name in names]
        rows = self._measure("cold_start", entries, lambda value, expected: value == expected)
        rows += [
            Result("cold_start", n, status="not installed") for n in THIRD_PARTY if n not in names
        ]
        order = ["sequential", "aiopar", "run_in_executor", *THIRD_PARTY]
        return sorted(rows, key=lambda row: order.index(row.contender))


def against_ceiling(rows: list[Result], ceiling: str) -> None:
    """Note on each pool row how fast it ran next to the ``ceiling`` row, round by round.

    The note reads "×0.97 of the ceiling's speed": the median over rounds of
    t_ceiling / t_row. Both ran seconds apart in each round, so this compares the
    pool with what the machine gave at that moment, much of the noise that moves the
    speedups of both taken out.
    """
    top = next((r for r in rows if r.contender == ceiling and r.status == "ok"), None)
    if top is None:
        return
    for row in rows:
        if (
            row.contender in (*AIOPAR_ROWS, "run_in_executor")
            and row.status == "ok"
            and row.in_rounds
            and len(row.runs_s) == len(top.runs_s)
            and all(t > 0 for t in row.runs_s)
        ):
            share = statistics.median(c / t for c, t in zip(top.runs_s, row.runs_s, strict=True))
            row.note = f"×{share:.2f} of the ceiling's speed (median over rounds)"


# --- the table and the files -----------------------------------------------------------------

AIOPAR_ROWS = ("aiopar", "aiopar submit")
"""The rows the bar applies to."""

CORE_ROWS = ("sequential", *AIOPAR_ROWS, "run_in_executor")
"""Rows that must run: a failure in one of them makes the command exit with status 1."""

QUICK_BAR = "n/a (quick sizes)"
"""The bar cell of aiopar rows under ``--quick``: the bars hold for the full sizes only."""

COLUMNS = ("workload", "contender", "median s", "speedup", "peak +MiB", "bar", "met?", "notes")
_NUMERIC = frozenset({"median s", "speedup", "peak +MiB"})


def judge(workload: Workload, rows: list[Result], *, quick: bool = False) -> None:
    """Fill in each row's speedup and, on aiopar rows, whether the bar is met.

    With ``quick`` (the sizes of ``--quick``) no bar is judged: the bars are set for the
    full sizes, and ``met`` stays None.

    The speedup is the median over rounds of t_seq / t_x, both timed in the same round:
    pairing the runs that ran a moment apart cancels the slow drifts of a shared
    machine (CPU clock, neighbours), which a ratio of medians taken over the whole run
    would keep. Without equal rounds (a contender failed midway, or runs timed back to
    back, as loop_lag's) it is the ratio of the medians.
    """
    sequential = next((r for r in rows if r.contender == "sequential"), None)
    for row in rows:
        median = row.median_s
        if sequential is not None and sequential.median_s is not None and median:
            pairs = list(zip(sequential.runs_s, row.runs_s, strict=False))
            if (
                sequential.in_rounds
                and row.in_rounds
                and len(pairs) == len(sequential.runs_s) == len(row.runs_s)
                and all(t > 0 for _, t in pairs)
            ):
                row.speedup = statistics.median(seq / t for seq, t in pairs)
            else:
                row.speedup = sequential.median_s / median
        if row.contender in AIOPAR_ROWS and not quick:
            row.met = row.status == "ok" and workload.meets(row)


def _ratio(value: float) -> str:
    return f"×{value:.2f}" if value >= 0.095 else f"×{value:.2g}"


def _cells(workload: Workload, row: Result, first: bool) -> list[str]:
    median, peak = row.median_s, row.peak_mib
    notes = row.note if row.status == "ok" else ": ".join(filter(None, (row.status, row.note)))
    is_aiopar = row.contender in AIOPAR_ROWS
    judged = is_aiopar and row.met is not None  # None: --quick, whose sizes have no bar
    return [
        workload.title if first else "",
        row.contender,
        f"{median:.3f}" if median is not None else "—",
        _ratio(row.speedup) if row.speedup is not None else "—",
        f"{peak:.0f}" if peak is not None else "—",
        (workload.bar if judged else QUICK_BAR) if is_aiopar else "",
        ("yes" if row.met else "no") if judged else "",
        notes,
    ]


def format_table(results: Sequence[tuple[Workload, list[Result]]]) -> str:
    """The results as one aligned plain-text table."""
    lines = [list(COLUMNS)]
    for workload, rows in results:
        lines.extend(_cells(workload, row, index == 0) for index, row in enumerate(rows))
    widths = [max(len(line[i]) for line in lines) for i in range(len(COLUMNS) - 1)]
    out = []
    for number, line in enumerate(lines):
        cells = [
            cell.rjust(width) if COLUMNS[i] in _NUMERIC else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(line, widths, strict=False))
        ]
        out.append("  ".join([*cells, line[-1]]).rstrip())
        if number == 0:
            out.append("-" * len(out[0]))
    return "\n".join(out)


def format_markdown(results: Sequence[tuple[Workload, list[Result]]], heading: str) -> str:
    """The results as a Markdown table, under a line that says where they were measured."""

    def row(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    align = ["---:" if column in _NUMERIC else "---" for column in COLUMNS]
    lines = [heading, "", row(COLUMNS), row(align)]
    for workload, rows in results:
        lines.extend(row(_cells(workload, r, i == 0)) for i, r in enumerate(rows))
    return "\n".join(lines) + "\n"


def _source_fingerprint() -> str:
    """A short hash of aiopar's ``*.py`` files but this one: which code a table measured."""
    digest = hashlib.sha256()
    package = os.path.dirname(os.path.abspath(aiopar.__file__))
    for name in sorted(os.listdir(package)):
        if name.endswith(".py") and name != "bench.py":
            with open(os.path.join(package, name), "rb") as file:
                digest.update(name.encode() + b"\0" + file.read() + b"\0")
    return digest.hexdigest()[:12]


def _machine(workers: int) -> dict[str, Any]:
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        memory = float("nan")
    try:
        version = importlib.import_module("importlib.metadata").version("aiopar")
    except Exception:
        version = "unknown"
    return {
        "cpus": os.cpu_count(),
        "workers": workers,
        "memory_gib": round(memory, 1),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "aiopar": version,
        "aiopar_source": _source_fingerprint(),
        "platform": platform.platform(),
        "date": time.strftime("%Y-%m-%d"),
    }


def to_json(
    results: Sequence[tuple[Workload, list[Result]]],
    *,
    machine: dict[str, Any],
    options: dict[str, Any],
    memory_method: str,
    seconds: float,
) -> dict[str, Any]:
    """The results as a JSON-ready dict; workloads keyed by name (see :data:`WORKLOADS`)."""
    workloads = {}
    for workload, rows in results:
        main_row = next((r for r in rows if r.contender == "aiopar"), None)
        workloads[workload.name] = {
            "title": workload.title,
            "description": workload.description,
            "bar": workload.bar,
            "met": main_row.met if main_row else None,
            "rows": [
                {
                    "contender": r.contender,
                    "status": r.status,
                    "median_s": r.median_s,
                    "runs_s": r.runs_s,
                    "speedup": r.speedup,
                    "peak_mib": r.peak_mib,
                    "lag_ms": r.lag_ms,
                    "met": r.met,
                    "note": r.note,
                }
                for r in rows
            ],
        }
    return {
        "machine": machine,
        "options": options,
        "memory": memory_method,
        "speedup": "median over rounds of t_sequential / t_contender, timed in the same round",
        "seconds": seconds,
        "workloads": workloads,
    }


# --- the command ----------------------------------------------------------------------------------


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m aiopar bench",
        description="Measure aiopar against sequential code, raw asyncio run_in_executor and,"
        " when installed, joblib, Ray, Dask and mpire; print one table.",
        epilog="Workloads: " + ", ".join(WORKLOADS) + ". See docs/benchmarks.md.",
    )
    parser.add_argument(
        "--repeat",
        type=_positive,
        default=5,
        metavar="N",
        help="timed runs per row (default 5; py_tasks, short and noisy, 3 times as many)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small sizes, for tests and a first look; the bars, set for the full sizes,"
        " are not judged",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--markdown", metavar="PATH", help="also write the table as Markdown")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=(*WORKLOADS, *EXTRA_WORKLOADS),
        metavar="NAME",
        help=f"run only these workloads ({', '.join(EXTRA_WORKLOADS)}: only when named here)",
    )
    parser.add_argument(
        "--loop", choices=("asyncio", "uvloop"), default="asyncio", help="event loop to use"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print its table; return the exit code (1 if a core row failed).

    Args:
        argv: the options after ``bench`` (``None``: ``sys.argv[1:]``); see ``--help``.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    if args.loop == "uvloop" and importlib.util.find_spec("uvloop") is None:
        parser.error("--loop uvloop needs uvloop: pip install uvloop")
    sizes = QUICK if args.quick else FULL
    names = [name for name in WORKLOADS if not args.only or name in args.only]
    names += [name for name in EXTRA_WORKLOADS if args.only and name in args.only]
    catalog = {**_workloads(sizes), **_bench_suite.workloads(args.quick)}
    start = time.perf_counter()

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    bench = Bench(sizes, args.repeat, loop=args.loop, progress=progress)
    machine = _machine(bench.workers)
    scale = "quick" if args.quick else "full"
    heading = (
        f"aiopar bench, {scale} sizes, --repeat {args.repeat}, {args.loop} loop:"
        f" {machine['workers']} workers on {machine['cpus']} CPUs,"
        f" {machine['memory_gib']:g} GiB, Python {machine['python']},"
        f" numpy {machine['numpy']}, aiopar {machine['aiopar']}"
        f" (source {machine['aiopar_source']}), {machine['date']}"
    )
    print(heading, flush=True)
    results: list[tuple[Workload, list[Result]]] = []
    try:
        ready = bench.warm()
        progress(
            f"workers started in {ready:.2f} s: aiopar.Pool({bench.workers}) and"
            f" ProcessPoolExecutor({bench.workers}, forkserver)"
        )
        watch = CpuWatch()
        for name in names:
            progress(f"{name}: {catalog[name].description}")
            rows: list[Result] = (
                getattr(bench, name)()
                if name in WORKLOADS
                else _bench_suite.rows(args.quick, bench.workers, args.repeat)
            )
            judge(catalog[name], rows, quick=args.quick)
            results.append((catalog[name], rows))
        load = watch.report()
    finally:
        bench.close()
    seconds = time.perf_counter() - start
    footer = [
        f"Memory: {bench.memory.method}.",
        f"Other processes used {load['others']:.0%} of the CPUs during the run"
        f" (hypervisor steal {load['steal']:.0%})"
        + ("; timings are disturbed." if load["others"] + load["steal"] > 0.1 else "."),
        f"Finished in {seconds:.1f} s.",
    ]
    if args.quick:
        footer.insert(0, "Quick sizes: the bars hold for the full sizes and are not judged.")
    print(format_table(results))
    print("\n".join(footer), flush=True)
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as file:
            file.write(format_markdown(results, heading + ".") + "\n" + "\n".join(footer) + "\n")
    if args.json:
        options = {"quick": args.quick, "repeat": args.repeat, "loop": args.loop}
        data = to_json(
            results,
            machine=machine,
            options={**options, "sizes": vars(sizes)},
            memory_method=bench.memory.method,
            seconds=seconds,
        )
        data["cpu_share"] = load
        with open(args.json, "w", encoding="utf-8") as file:
            json.dump(data, file, indent=2, ensure_ascii=False)
            file.write("\n")
    failed = [
        f"{w.name}/{r.contender}"
        for w, rows in results
        for r in rows
        if r.contender in CORE_ROWS and r.status != "ok"
    ]
    if failed:
        print(f"aiopar bench: these rows failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0
