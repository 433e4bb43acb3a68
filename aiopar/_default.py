"""The process-wide default pool behind the module-level functions.

Made on first use, with default options, and kept for the life of the process: every
event loop that comes after (each test's own loop in a test suite, asyncio, uvloop and
trio alike) reuses its workers. Closed at interpreter exit, or by ``await shutdown()``,
after which the next call makes a new one. A child made by ``os.fork()`` starts with no
default pool: its first call makes its own.

Inside a worker process the default pool starts no processes: it runs each call in
that worker, in order (see ``_inline.py``), so a task may call ``aiopar.amap`` or
``aiopar.submit`` without multiplying processes or keeping its pool from closing.
With ``AIOPAR_INLINE=1`` in the environment, the default pool runs in-process too
(``Pool(inline=True)``), so a program can be debugged without editing it; with
``AIOPAR_CLUSTER=tcp://host:8786`` it runs on that Dask cluster
(``Pool(cluster=...)``), so a program scales out without editing it.
"""

from __future__ import annotations

import atexit
import os
import threading

from . import _remote
from ._cluster_options import ENVIRONMENT_VARIABLE, cluster_from_environment
from ._inline import inline_from_environment
from ._pool import Pool
from ._worker import in_worker

__all__ = ["get_default_pool", "shutdown"]

_lock = threading.Lock()
_pool: Pool | None = None


def get_default_pool() -> Pool:
    """Return the process-wide default pool, making and opening it on first use."""
    global _pool
    with _lock:
        if _pool is None:
            if in_worker():
                pool = Pool(workers=1)
                pool._open_inline()
            else:
                pool = _pool_from_environment()
                pool.open()
            _pool = pool
        return _pool


def _pool_from_environment() -> Pool:
    """The default pool as ``AIOPAR_CLUSTER`` and ``AIOPAR_INLINE`` ask for it."""
    cluster = cluster_from_environment()
    inline = inline_from_environment()
    if cluster is not None and inline:
        raise ValueError(
            f"{ENVIRONMENT_VARIABLE} (run on a Dask cluster) and AIOPAR_INLINE (run in this "
            "process) are both set: unset one of them"
        )
    return Pool(cluster=cluster) if cluster is not None else Pool(inline=inline)


_remote.use_default_pool(get_default_pool)  # for .remote() of a function without a pool


def _take_pool() -> Pool | None:
    global _pool
    with _lock:
        pool, _pool = _pool, None
    return pool


def _close_at_exit() -> None:
    pool = _take_pool()
    if pool is not None:
        pool.close()


async def shutdown() -> None:
    """Close the default pool: cancel queued work, wait for running work, stop workers.

    The next module-level call starts a new default pool. Explicit pools are not
    affected.

    Cancellation: shielded; the pool is closed even if the caller is cancelled.
    """
    pool = _take_pool()
    if pool is not None:
        await pool.aclose()


def _forget_after_fork() -> None:
    """In a child made by ``os.fork()``: the parent's default pool is not ours (its
    workers are the parent's); the next call makes a fresh one for this process."""
    global _pool, _lock
    _lock = threading.Lock()
    _pool = None


atexit.register(_close_at_exit)
os.register_at_fork(after_in_child=_forget_after_fork)
