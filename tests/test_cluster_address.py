"""aiopar on a Dask cluster reached by its scheduler address: a ``dask scheduler`` and a
``dask worker`` (two worker processes of one thread) started here as separate processes,
then ``Pool(cluster="tcp://...")`` (the pool owns its client and closes it) and a script
whose default pool takes the address from ``AIOPAR_CLUSTER``.

The cluster runs in subprocesses of the test, in sessions of their own; the fixture
stops them (SIGTERM, then SIGKILL to their process group) and the ``no_leaks`` fixture
checks that none of them is left. Worker functions are importable from the installed
aiopar (and the standard library), so the separately started workers find them.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest

import aiopar
from aiopar.bench.workloads.matrix_dag import create_matrix, multiply

distributed = pytest.importorskip("distributed")

ROOT = Path(__file__).resolve().parent.parent
START_S = 60.0  # a generous bound for a slow, shared machine; it usually takes 2-5 s


@dataclass
class Cluster:
    """A scheduler address and the pids of the worker processes behind it."""

    address: str
    worker_pids: set[int]


def _start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "dask", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=log.parent,
            start_new_session=True,  # its own process group: the nanny's workers with it
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (dask closes its workers and nannies), then SIGKILL to the whole group."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)  # whatever is left of the group it leads
    except ProcessLookupError:
        pass
    process.wait(timeout=10)


def _wait_until(ready: Any, what: str, logs: list[Path]) -> Any:
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        value = ready()
        if value:
            return value
        time.sleep(0.1)
    text = "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}" for log in logs)
    pytest.fail(f"{what} did not happen within {START_S:.0f} s\n{text}")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _gone(pids: set[int]) -> bool:
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            pass
    return True


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """``dask scheduler`` + ``dask worker ADDRESS --nworkers 2 --nthreads 1`` on this host,
    shared by this module's tests. Both start at once, on a port chosen here (the worker
    retries until the scheduler listens); once stopped, none of their processes may be
    left."""
    folder = tmp_path_factory.mktemp("cluster")
    scheduler_log, worker_log = folder / "scheduler.log", folder / "worker.log"
    logs = [scheduler_log, worker_log]
    where = f"tcp://127.0.0.1:{_free_port()}"
    processes = []
    pids: set[int] = set()
    try:
        scheduler = _start(
            [
                "scheduler",
                "--host=127.0.0.1",
                f"--port={where.rsplit(':', 1)[1]}",
                "--dashboard-address=127.0.0.1:0",  # 8787 may be taken
                "--idle-timeout=300s",  # a safety net should the test process vanish
            ],
            scheduler_log,
        )
        processes.append(scheduler)
        worker = _start(
            [
                "worker",
                where,
                "--nworkers=2",
                "--nthreads=1",
                "--host=127.0.0.1",
                "--no-dashboard",
                "--death-timeout=60s",  # gone if the scheduler goes
                f"--local-directory={folder / 'workers'}",
            ],
            worker_log,
        )
        processes.append(worker)

        def registered() -> bool:
            text = scheduler_log.read_text(errors="replace")
            return text.count("Register worker addr") >= 2

        _wait_until(registered, "the registration of both workers", logs)
        for process in processes:
            pids |= {p.pid for p in psutil.Process(process.pid).children(recursive=True)}
        pids |= {process.pid for process in processes}
        workers = {p.pid for p in psutil.Process(worker.pid).children(recursive=True)}
        yield Cluster(where, workers)
    finally:
        for process in reversed(processes):  # the workers first, then the scheduler
            _stop(process)
    assert _gone(pids), f"processes of the cluster left behind: {sorted(pids)}"


async def clients_on(address: str, *, until_none: bool = False) -> set[str]:
    """The ids of the clients the scheduler knows, asked by a client of our own (not
    among them); with ``until_none``, asked again for up to 10 s until there are none
    (a client that went away with its process is removed once its connection closes)."""
    async with distributed.Client(address, asynchronous=True) as observer:
        deadline = time.monotonic() + 10.0
        while True:
            # a lambda travels by value: the scheduler cannot import this test module
            ids = await observer.run_on_scheduler(
                lambda dask_scheduler: list(dask_scheduler.clients)
            )
            others = set(ids) - {observer.id, "fire-and-forget"}
            if not (until_none and others) or time.monotonic() > deadline:
                return others
            await asyncio.sleep(0.1)


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_pool_on_a_scheduler_address_runs_there_and_closes_its_client(
    cluster: Cluster,
) -> None:
    async with aiopar.Pool(cluster=cluster.address) as pool:
        assert await pool.amap(abs, [-3, 1, -2]) == [3, 1, 2]
        x = pool.submit(create_matrix, 40, 1)
        y = pool.submit(create_matrix, 40, 2)
        product = await pool.submit(multiply, x, y)
        np.testing.assert_allclose(product, create_matrix(40, 1) @ create_matrix(40, 2))
        pids = set(await pool.gather(*(pool.submit(os.getpid) for _ in range(4))))
        assert pids <= cluster.worker_pids, (pids, cluster.worker_pids)
        assert len(await clients_on(cluster.address)) == 1  # the pool's own client
    # closed with the pool: the scheduler has no client left, and the cluster still runs
    assert await clients_on(cluster.address, until_none=True) == set()
    async with distributed.Client(cluster.address, asynchronous=True) as client:
        assert await client.submit(abs, -5) == 5


SCRIPT = """
import os

import anyio

import aiopar


async def main() -> None:
    print("squares", await aiopar.amap(abs, [-1, -2, -3]))
    print("pid", await aiopar.submit(os.getpid))


if __name__ == "__main__":
    anyio.run(main)
"""


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_the_default_pool_takes_the_address_from_aiopar_cluster(
    cluster: Cluster, tmp_path: Path
) -> None:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(SCRIPT).lstrip())
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIOPAR_")}
    env["AIOPAR_CLUSTER"] = cluster.address
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=50,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert "squares [1, 2, 3]" in lines, done.stdout
    pid = int(next(line for line in lines if line.startswith("pid ")).split()[1])
    assert pid in cluster.worker_pids, (pid, cluster.worker_pids)  # ran in the cluster
    assert "Traceback" not in done.stderr, done.stderr
    assert await clients_on(cluster.address, until_none=True) == set()  # closed at exit
