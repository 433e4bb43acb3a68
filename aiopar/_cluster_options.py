"""``Pool(cluster=...)`` and ``AIOPAR_CLUSTER``: checking what the caller gives.

``distributed`` is imported only when a cluster is used: :func:`import_distributed`
says what to install when it is missing. Runs in the caller's thread.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any

__all__ = [
    "ENVIRONMENT_VARIABLE",
    "check_cluster",
    "check_cluster_options",
    "cluster_from_environment",
    "import_distributed",
]

#: The environment variable that puts the default pool on a Dask cluster.
ENVIRONMENT_VARIABLE = "AIOPAR_CLUSTER"

_INSTALL = "pip install 'aiopar[dask]'"
_ADDRESS = re.compile(r"^[a-z][a-z0-9+.-]*://\S+$|^[\w.-]+:\d+$")


def import_distributed() -> Any:
    """The ``distributed`` module, imported now.

    Raises:
        ImportError: when it is not installed, naming the extra to install.
    """
    try:
        import distributed
    except ImportError:
        raise ImportError(
            "Pool(cluster=...) runs jobs on a Dask cluster and needs the distributed "
            f"package, which is not installed: {_INSTALL}"
        ) from None
    return distributed


def check_cluster(cluster: object) -> Any:
    """Validate ``Pool(cluster=...)``: a scheduler address or a ``distributed.Client``.

    Raises:
        TypeError: for anything else, or an asynchronous client.
        ValueError: for an empty address.
        ImportError: when ``distributed`` is not installed.
    """
    if isinstance(cluster, str):
        if not cluster.strip():
            raise ValueError(
                "cluster must be a Dask scheduler address such as 'tcp://host:8786' or a "
                "distributed.Client; got an empty string"
            )
        import_distributed()
        return cluster.strip()
    client_type = getattr(sys.modules.get("distributed"), "Client", None)
    if client_type is None or not isinstance(cluster, client_type):
        raise TypeError(
            "cluster must be a Dask scheduler address such as 'tcp://host:8786' or a "
            f"distributed.Client, got {type(cluster).__name__}: {cluster!r:.80}"
        )
    if getattr(cluster, "_asynchronous", False):
        raise TypeError(
            "cluster=... got an asynchronous distributed.Client (asynchronous=True): it "
            "lives on one event loop, and a pool serves any loop (asyncio, uvloop, trio, "
            "later loops). Pass the scheduler address instead (cluster=client."
            "scheduler.address: the pool then keeps a client of its own), or a Client "
            "made without asynchronous=True"
        )
    return cluster


def cluster_from_environment() -> str | None:
    """The scheduler address ``AIOPAR_CLUSTER`` gives the default pool, or None.

    Raises:
        ValueError: for a value that is no address, naming the variable.
    """
    value = os.environ.get(ENVIRONMENT_VARIABLE, "").strip()
    if not value:
        return None
    if not _ADDRESS.match(value):
        raise ValueError(
            f"{ENVIRONMENT_VARIABLE}={os.environ[ENVIRONMENT_VARIABLE]!r} is not a Dask "
            "scheduler address: use the address the scheduler prints, such as "
            "tcp://10.0.0.5:8786, or unset it to run on this machine's processes"
        )
    return value


def check_cluster_options(cluster: object, **others: object) -> Any:
    """Validate ``cluster=`` (see :func:`check_cluster`) and refuse, naming them, the
    options of ``others`` that configure local worker processes (set, not None/False).

    Raises:
        ValueError: for such an option.
    """
    for name, value in others.items():
        if value is not None and value is not False:
            raise ValueError(
                f"{name}=... configures this machine's worker processes; with cluster=... "
                "the jobs run on the Dask cluster's workers instead: drop "
                f"{name}=... (size and start the cluster on the Dask side)"
            )
    return check_cluster(cluster)
