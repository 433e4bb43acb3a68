"""``Initializer``: the Dask worker plugin that runs a pool's ``initializer`` in each worker.

Imported by ``_cluster.py`` only when a pool with an initializer opens on a cluster
(it needs ``distributed``), and unpickled by each Dask worker, where :meth:`setup`
runs on the worker's event loop thread, once when the plugin is registered and once in
every worker that joins or restarts later. The state goes to
``_cluster_worker.states``, where that pool's tasks find it.
"""

from __future__ import annotations

import pickle
from typing import Any

from . import _cluster_worker

try:
    from distributed import WorkerPlugin
except ImportError:  # without the dask extra: importable, never used (no cluster pool)
    WorkerPlugin = object  # type: ignore[assignment,misc]

__all__ = ["Initializer"]


class Initializer(WorkerPlugin):
    """Runs a pool's initializer once in each Dask worker; see the module docstring."""

    idempotent = False

    def __init__(self, token: str, initializer_blob: bytes, initargs_blob: bytes | None) -> None:
        self.token = token
        self.initializer_blob = initializer_blob
        self.initargs_blob = initargs_blob

    def setup(self, worker: Any) -> None:
        """Run the initializer; a failure fails each of the pool's tasks on this worker."""
        try:
            initializer = pickle.loads(self.initializer_blob)
            initargs = pickle.loads(self.initargs_blob) if self.initargs_blob else ()
            _cluster_worker.states[self.token] = initializer(*initargs)
            _cluster_worker.init_errors.pop(self.token, None)
        except BaseException as exc:
            _cluster_worker.init_errors[self.token] = exc

    def teardown(self, worker: Any) -> None:
        _cluster_worker.states.pop(self.token, None)
        _cluster_worker.init_errors.pop(self.token, None)
