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
* ``ProcessPoolExecutor.map`` (``tiny_map`` only): the executor's own map, with a chunk
  size tuned by hand;
* ``joblib``, ``ray``, ``dask``, ``mpire``, ``aiomultiprocess``: only when importable
  (each started for its workload, warmed, and stopped after it); otherwise their rows
  say "not installed".

The package, top-down::

    command      the options, the run, the footer with the machine's load (aiopar._load)
    workloads/   one module per workload: its worker functions, title, bar and rows
    runner       Bench: the pools, untimed check, interleaved rounds, peers' rows
    peers        joblib, Ray, Dask, mpire, aiomultiprocess: imported only when installed
    report       speedups and verdicts, the table, Markdown, JSON
    rows, sizes, memory, lag    the data of a run, the sizes, peak memory, loop lag

Memory ("peak +MiB") is measured by :class:`aiopar.bench.memory.PeakMemory`; the cold
start rows report the whole peak of the new interpreter and its workers instead.

The functions sent to workers live at module level in the workload modules, so workers
import them by name; heavy imports (joblib, ray, dask, mpire, aiomultiprocess) happen
inside functions, and only when those packages are installed.
"""

from __future__ import annotations

from .command import main as main
from .peers import THIRD_PARTY as THIRD_PARTY
from .peers import call as call
from .peers import sleep_for as sleep_for
from .report import AIOPAR_ROWS as AIOPAR_ROWS
from .sizes import FULL as FULL
from .sizes import QUICK as QUICK
from .sizes import Sizes as Sizes
from .workloads import WORKLOADS as WORKLOADS
from .workloads.matrix_dag import create_matrix as create_matrix
from .workloads.matrix_dag import multiply as multiply
from .workloads.put import array_sum as array_sum
from .workloads.put import array_sums as array_sums
from .workloads.py_tasks import PY_TASKS_ROUNDS as PY_TASKS_ROUNDS
from .workloads.py_tasks import py_work as py_work
from .workloads.py_tasks import py_work_many as py_work_many
from .workloads.vec import vec as vec
from .workloads.vec_heavy import vec_heavy as vec_heavy

__all__ = [
    "AIOPAR_ROWS",
    "FULL",
    "PY_TASKS_ROUNDS",
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
