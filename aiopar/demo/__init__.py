"""``python -m aiopar demo``: classic parallel-Python experiments, rewritten with aiopar.

Each experiment runs twice, once the plain sequential way and once with aiopar, checks
that both give the same answer, and prints one row of a table as soon as it finishes::

    experiment                     sequential s  aiopar s   speedup  notes
    ----------------------------------------------------------------------------------
    sleep tasks (remote + gather)          4.01      1.01     3.96x  40 x time.sleep(0.1) ...
    tree of adds (tree_reduce)             1.75      0.76     2.32x  7 adds of 0.25 s, ...

The rows come from two well-known examples, the Ray tutorial (remote tasks, a matrix
task graph, a slow ``add``) and the ``ProcessPoolExecutor`` recipe that cuts a numpy
array into chunks:

1. Ray's 100 one-second ``f.remote(i)`` tasks, as 40 tasks of ``time.sleep(0.1)`` on
   ``Pool(workers=4)`` with ``pool.remote`` and :func:`aiopar.gather`.
2. Two ``create_matrix`` tasks feeding ``multiply_matrices`` through ``TaskRef``
   arguments (a task graph: little to gain, the multiply waits for both).
3. Eight values summed by a slow ``add``: as a linear chain of ``TaskRef``s (depth 7)
   and with :func:`aiopar.tree_reduce` (depth 3).
4. The chunked array: a 1e5-element array cut into 15 chunks, each processed by a
   per-element Python loop, with :func:`aiopar.amap_chunks`.
5. The same kind of CPU work next to a 1 ms ticker on the same event loop: run inside
   the loop it stalls the ticker; sent through :func:`aiopar.amap` the ticker keeps
   ticking. The notes give ticks served and the worst loop lag.

A row slower with aiopar than without says why in its notes: two rows are so by nature
(the matrix graph, the chain), and any row is when other processes kept the CPUs busy
while aiopar ran (measured from ``/proc``, see :mod:`aiopar._load`); the share other
processes used during the whole demo is printed under the table when it is large.

``--quick`` (or ``AIOPAR_DEMO_QUICK=1`` in the environment, which lets CI run the
README's command as written) shrinks every size: the whole demo took 6-7 s on 2 cores
instead of 27 s (the tests use it). Everything runs in the main thread's event loop but
the work, which runs in the workers; the functions sent there live at module level here,
so the workers import them by name.

The package, by responsibility:

* :mod:`aiopar.demo.work`: the functions that run in the workers;
* :mod:`aiopar.demo.table`: the sizes, the rows and how they are printed;
* :mod:`aiopar.demo.experiments`: the experiments, each timed both ways;
* :mod:`aiopar.demo.cli`: the command line and the order of the experiments.
"""

from __future__ import annotations

from .cli import main
from .table import BUSY_SHARE, QUICK, QUICK_ENV, ROW_NAMES, WHY_SLOWER, Row, Sizes
from .work import (
    create_matrix,
    halve_repeatedly,
    multiply_matrices,
    sleep_then_return,
    slow_add,
)

__all__ = [
    "BUSY_SHARE",
    "QUICK",
    "QUICK_ENV",
    "ROW_NAMES",
    "WHY_SLOWER",
    "Row",
    "Sizes",
    "create_matrix",
    "halve_repeatedly",
    "main",
    "multiply_matrices",
    "sleep_then_return",
    "slow_add",
]
