"""Workload ``cold_start``: a new interpreter from before ``import`` to the first result.

Each contender's script runs in a subprocess (started from the bench's main thread,
which waits for it); the script times itself and prints its figures as one JSON line.
The memory of these rows is the whole peak of the new interpreter and its workers.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import time

from .. import peers
from ..rows import Result, Sample, Workload
from ..runner import Bench
from ..sizes import Sizes

__all__ = ["run", "workload"]

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


def _cold_bar(r: Result) -> bool:
    return r.median_s is not None and r.median_s <= 0.5


def workload(sizes: Sizes) -> Workload:
    """Title, description and bar of ``cold_start`` (the same at every size)."""
    return Workload(
        "cold_start",
        "cold start: import → first amap result",
        "a new interpreter (subprocess) from before `import aiopar` to the first"
        " amap(abs, [-1, -2, -3]) result, workers started from nothing",
        "≤ 0.5 s",
        _cold_bar,
    )


def run(bench: Bench) -> list[Result]:
    """A new interpreter from before ``import`` to the first result, per contender."""
    libraries = [name for name in peers.THIRD_PARTY if name in _COLD_CODE]
    names = ["sequential", "aiopar", "run_in_executor"]
    installed = [name for name in libraries if peers.installed(name)]
    names += installed if bench.peers else []
    entries = [(name, functools.partial(_cold_start, name, bench.workers)) for name in names]
    rows = bench.measure("cold_start", entries, lambda value, expected: value == expected)
    rows += [
        Result("cold_start", n, status="not installed") for n in libraries if n not in installed
    ]
    if not bench.peers:
        rows += [Result("cold_start", n, status="skipped", note=peers.SKIPPED) for n in installed]
    order = ["sequential", "aiopar", "run_in_executor", *libraries]
    return sorted(rows, key=lambda row: order.index(row.contender))
