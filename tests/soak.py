"""Soak run: 10,000 mixed tasks, 10% raising, 3 injected worker kills; nothing lost or leaked.

Not a pytest test (pytest collects ``test_*.py`` only). Run it from anywhere::

    python3 tests/soak.py [--seed N] [--workers N]

The workload, all on one explicit pool, all at once:

* a task graph: 1,500 leaf tasks and 1,500 join tasks, each join depending on two
  random leaves (``submit`` with TaskRefs as arguments), submitted in 10 waves;
* 250 ``amap`` calls of 20 items (5,000 items, ``chunksize=4``);
* 50 ``amap_chunks`` calls over numpy arrays of 20 rows of 8,192 int64 (1.25 MiB each,
  so they travel through shared memory), cut in 4 pieces (1,000 rows);
* 20 ``tree_reduce`` calls of 50 items (1,000 items).

Exactly 10% of each kind raise ``faulty.SoakError`` on purpose: 150 leaves and 150 joins;
25 map calls, 5 chunk calls and 2 reductions whose every item raises (one raising item
fails its whole call, so raising items are grouped by call). A join whose dependency
failed fails with that same exception without running. Three times during the run
(after a quarter, half and three quarters of the work), a task SIGKILLs its own worker.

Mixed into that load, unless ``--no-hostile``, a hostile phase (see
docs/reliability.md, "Hostile tasks"): tasks that call ``sys.exit()`` or raise
KeyboardInterrupt, results and exceptions the parent cannot rebuild, tasks that leave a
thread or a forked child running, arguments with shared sub-structures or cycles
(checked in bounded time on the loop's thread), two endless ``imap`` (ordered and not) read 3,000
results deep with the default ``max_inflight``, a second pool whose initializer never
returns, and a program run as a subprocess that leaves with 40 tasks queued. Each must
behave as documented; the forked children must be gone once the pool is closed.

Every outcome is checked against a sequential reference computed here with the same
functions. Printed at the end: tasks run, failures seen (expected vs seen), crashes
survived, results lost, processes and /dev/shm segments leaked. The exit status is 1 if
anything was lost, wrong or leaked, or a kill was not survived.
"""

from __future__ import annotations

import argparse
import functools
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import multiprocessing.forkserver
import multiprocessing.resource_tracker

import anyio
import numpy as np
import psutil

import aiopar
from tests import faulty

LEAVES = 1_500
JOINS = 1_500
WAVES = 10
MAP_CALLS, MAP_ITEMS = 250, 20
CHUNK_CALLS, CHUNK_ROWS, CHUNK_COLUMNS = 50, 20, 8_192
REDUCE_CALLS, REDUCE_ITEMS = 20, 50
KILLS = 3
FAILING = 0.10
CONCURRENT_CALLS = 8


@dataclass
class Outcome:
    """What one unit of work should give, or gave: a value, or an error message."""

    ok: bool
    value: Any = None
    errors: frozenset[str] = frozenset()  # acceptable messages of the expected error


@dataclass
class Tally:
    tasks: int = 0  # units whose outcome was checked
    expected_failures: int = 0
    own_failures: int = 0  # of which raised by the task itself
    failures_seen: int = 0
    lost: int = 0  # a result that should have come and did not, or came wrong
    wrong_failures: int = 0  # a failure that came with the wrong exception
    crashes: int = 0
    kills_at: list[int] = field(default_factory=list)  # % of the work done at each kill
    done_units: int = 0  # progress, to time the kills
    problems: list[str] = field(default_factory=list)

    def check(self, units: int, expected: Outcome, got: Outcome, what: str) -> None:
        self.tasks += units
        if expected.ok:
            if not got.ok:
                self.lost += units
                self.problems.append(f"{what}: expected a result, got {got.errors}")
            elif not _equal(got.value, expected.value):
                self.lost += units
                self.problems.append(f"{what}: wrong result")
            return
        self.expected_failures += units
        if got.ok:
            self.wrong_failures += units
            self.problems.append(f"{what}: expected {set(expected.errors)}, got a result")
        elif not all(_accepted(error, expected.errors) for error in got.errors):
            self.wrong_failures += units
            self.problems.append(f"{what}: expected {set(expected.errors)}, got {got.errors}")
        else:
            self.failures_seen += units


def _accepted(error: str, expected: frozenset[str]) -> bool:
    """Whether ``error`` is one of ``expected`` (where a trailing ``*`` matches any end)."""
    return any(
        error.startswith(pattern[:-1]) if pattern.endswith("*") else error == pattern
        for pattern in expected
    )


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and a.shape == b.shape and bool(np.array_equal(a, b))
    return bool(a == b)


def _failure(exc: BaseException) -> Outcome:
    kind = "SoakError" if type(exc) is faulty.SoakError else type(exc).__name__
    return Outcome(False, errors=frozenset({f"{kind}: {exc}"}))


def _expect(func: Any, *args: Any) -> Outcome:
    try:
        return Outcome(True, func(*args))
    except faulty.SoakError as exc:
        return _failure(exc)


# ── the plan and its sequential reference ────────────────────────────────────────────


@dataclass
class Plan:
    leaf_fails: list[bool]
    join_fails: list[bool]
    join_deps: list[tuple[int, int]]
    map_calls: list[list[tuple[int, bool]]]
    chunk_calls: list[np.ndarray]
    reduce_calls: list[list[int]]


def make_plan(seed: int) -> Plan:
    rng = random.Random(seed)

    def flags(count: int) -> list[bool]:
        failing = set(rng.sample(range(count), round(count * FAILING)))
        return [i in failing for i in range(count)]

    leaf_fails = flags(LEAVES)
    join_fails = flags(JOINS)
    # a join of wave w depends on leaves of waves 0..w (all submitted by then)
    per_wave = LEAVES // WAVES
    join_deps = []
    for j in range(JOINS):
        known = (j // per_wave + 1) * per_wave
        join_deps.append((rng.randrange(known), rng.randrange(known)))
    map_fails = flags(MAP_CALLS)
    map_calls = [
        [(call * MAP_ITEMS + i, map_fails[call]) for i in range(MAP_ITEMS)]
        for call in range(MAP_CALLS)
    ]
    chunk_fails = flags(CHUNK_CALLS)
    chunk_calls = []
    for call in range(CHUNK_CALLS):
        data = np.arange(CHUNK_ROWS * CHUNK_COLUMNS, dtype=np.int64).reshape(CHUNK_ROWS, -1)
        data += call
        chunk_calls.append(-data - 1 if chunk_fails[call] else data)
    reduce_fails = flags(REDUCE_CALLS)
    reduce_calls = [
        [(-1 if reduce_fails[call] else 1) * (call * REDUCE_ITEMS + i + 1) for i in range(50)]
        for call in range(REDUCE_CALLS)
    ]
    return Plan(leaf_fails, join_fails, join_deps, map_calls, chunk_calls, reduce_calls)


def reference(plan: Plan) -> dict[str, Any]:
    leaves = [_expect(faulty.soak_leaf, i, f) for i, f in enumerate(plan.leaf_fails)]
    joins = []
    for j, (a, b) in enumerate(plan.join_deps):
        failed = [leaves[d] for d in (a, b) if not leaves[d].ok]
        if failed:  # a failed dependency: the join fails with its exception, unrun
            joins.append(Outcome(False, errors=frozenset().union(*(o.errors for o in failed))))
        else:
            joins.append(
                _expect(faulty.soak_join, j, plan.join_fails[j], leaves[a].value, leaves[b].value)
            )

    def whole_call(func: Any, items: list[Any]) -> Outcome:
        # A call fails with the error of one of its failing items: which one comes
        # first depends on the workers, so every failing item's message is accepted.
        outcomes = [_expect(func, item) for item in items]
        errors = frozenset().union(*(o.errors for o in outcomes if not o.ok))
        return (
            Outcome(False, errors=errors) if errors else Outcome(True, [o.value for o in outcomes])
        )

    maps = [whole_call(faulty.soak_item, items) for items in plan.map_calls]
    chunks = []
    for data in plan.chunk_calls:
        pieces = np.array_split(data, 4)  # amap_chunks(chunks=4) cuts 20 rows as 5+5+5+5
        outcome = whole_call(faulty.soak_chunk, pieces)
        chunks.append(Outcome(True, np.concatenate(outcome.value)) if outcome.ok else outcome)
    reductions = []
    for items in plan.reduce_calls:
        try:
            reductions.append(Outcome(True, functools.reduce(faulty.soak_add, items)))
        except faulty.SoakError:
            # Which step fails first depends on the tree: accept any step's error.
            reductions.append(
                Outcome(False, errors=frozenset({"SoakError: cannot add a negative value*"}))
            )
    return {"leaves": leaves, "joins": joins, "maps": maps, "chunks": chunks, "reduce": reductions}


# ── the run ──────────────────────────────────────────────────────────────────────────


async def _outcome(awaitable: Any) -> Outcome:
    try:
        return Outcome(True, await awaitable)
    except Exception as exc:
        return _failure(exc)


async def run_graph(pool: aiopar.Pool, plan: Plan, tally: Tally, got: dict[str, Any]) -> None:
    """Submit the graph in waves (so a kill task never queues behind all of it)."""
    per_wave = LEAVES // WAVES
    leaves: list[aiopar.TaskRef[int]] = []
    joins: list[aiopar.TaskRef[int]] = []
    for wave in range(WAVES):
        start, stop = wave * per_wave, (wave + 1) * per_wave
        for i in range(start, stop):
            leaves.append(pool.submit(faulty.soak_leaf, i, plan.leaf_fails[i]))
        for j in range(start, stop):
            a, b = plan.join_deps[j]
            joins.append(pool.submit(faulty.soak_join, j, plan.join_fails[j], leaves[a], leaves[b]))
        await aiopar.gather(*leaves[start:stop], *joins[start:stop], return_exceptions=True)
        tally.done_units += 2 * per_wave
    got["leaves"] = [await _outcome(ref) for ref in leaves]
    got["joins"] = [await _outcome(ref) for ref in joins]


async def run_calls(
    calls: list[Any],
    start: Any,
    units: int,
    ref_key: str,
    tally: Tally,
    got: dict[str, list[Outcome]],
) -> None:
    limiter = anyio.CapacityLimiter(CONCURRENT_CALLS)
    results: list[Outcome] = [Outcome(False)] * len(calls)

    async def one(index: int) -> None:
        async with limiter:
            results[index] = await _outcome(start(calls[index]))
            tally.done_units += units

    async with anyio.create_task_group() as group:
        for index in range(len(calls)):
            group.start_soon(one, index)
    got[ref_key] = results


async def inject_kills(pool: aiopar.Pool, total: int, tally: Tally, finished: anyio.Event) -> None:
    for k in range(1, KILLS + 1):
        while tally.done_units < total * k / (KILLS + 1) and not finished.is_set():
            await anyio.sleep(0.005)
        try:
            await pool.submit(faulty.sleep_then_kill_self, 0.05)
        except aiopar.WorkerCrashedError as exc:
            if "task sleep_then_kill_self#" in str(exc) and exc.exitcode == -9:
                tally.crashes += 1
                tally.kills_at.append(round(100 * tally.done_units / total))
            else:
                tally.problems.append(f"kill {k}: unexpected crash report: {exc}")
        else:
            tally.problems.append(f"kill {k}: the worker did not die")


# ── the hostile phase: tasks and callers that misbehave, mixed into the load ──────────

HOSTILE_ROUNDS = 6
IMAP_RESULTS = 3_000
EXIT_SCRIPT = """
import asyncio, sys
sys.path.insert(0, {repo!r})
import aiopar
from tests import faulty

async def main():
    refs = [aiopar.submit(faulty.logged_value, {log!r}, i, 0.2) for i in range(40)]
    await refs[0]

if __name__ == "__main__":
    asyncio.run(main())
"""


@dataclass
class Hostile:
    checks: int = 0
    passed: int = 0
    kinds: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def expect(self, kind: str, ok: bool, detail: str) -> None:
        self.checks += 1
        self.kinds[kind] = self.kinds.get(kind, 0) + 1
        if ok:
            self.passed += 1
        else:
            self.problems.append(f"{kind}: {detail}")


async def _raises(awaitable: Any, kind: type[BaseException]) -> tuple[bool, str]:
    try:
        value = await awaitable
    except kind as exc:
        return True, f"{type(exc).__name__}: {exc}"[:200]
    except Exception as exc:
        return False, f"{type(exc).__name__}: {exc}"[:200]
    return False, f"a result: {value!r}"[:200]


async def _endless_imap(pool: aiopar.Pool, ordered: bool, hostile: Hostile) -> None:
    """Item 4: an endless source read through imap's default max_inflight."""
    from aiopar._maps import IMAP_INFLIGHT_PER_WORKER

    taken = 0

    async def endless() -> Any:
        nonlocal taken
        while True:
            taken += 1
            yield (taken, False)

    yielded = most_ahead = 0
    right = True
    results = pool.imap(faulty.soak_item, endless(), ordered=ordered)
    try:
        async for value in results:
            yielded += 1
            most_ahead = max(most_ahead, taken - yielded)
            if ordered:
                right = right and value == faulty.soak_item((yielded, False))
            if yielded >= IMAP_RESULTS:
                break
    finally:
        await results.aclose()
    bound = IMAP_INFLIGHT_PER_WORKER * pool.workers
    hostile.expect("endless imap", right and most_ahead <= bound, f"ahead {most_ahead} > {bound}")


async def _exit_with_queued_work(tmp: str, hostile: Hostile) -> None:
    """Item 5: a program that leaves with 40 tasks queued on the default pool."""
    log = os.path.join(tmp, "exit-runs")
    script = os.path.join(tmp, "exit.py")
    repo = str(Path(__file__).resolve().parent.parent)
    Path(script).write_text(EXIT_SCRIPT.format(repo=repo, log=log))
    try:
        with anyio.fail_after(60):
            done = await anyio.run_process([sys.executable, script], check=False)
    except TimeoutError:
        hostile.expect("exit with queued work", False, "the program did not end in 60 s")
        return
    runs = len(Path(log).read_text().split()) if os.path.exists(log) else 0
    hostile.expect(
        "exit with queued work",
        done.returncode == 0 and runs <= 3 * (os.cpu_count() or 1) + 1,
        f"exit status {done.returncode}, {runs} of 40 queued tasks ran",
    )


async def _stuck_initializer(hostile: Hostile) -> None:
    """Item 7: a pool whose initializer never returns (start-up deadline 1 s)."""
    os.environ["AIOPAR_START_TIMEOUT"] = "1"
    try:
        pool = aiopar.Pool(1, initializer=faulty.never_returns)
        pool.open()
    finally:
        del os.environ["AIOPAR_START_TIMEOUT"]
    try:
        ok, detail = await _raises(pool.submit(faulty.soak_leaf, 1, False), RuntimeError)
        hostile.expect("initializer never returns", ok and "never_returns" in detail, detail)
    finally:
        with anyio.fail_after(30):
            await pool.aclose()


async def _hostile_shapes(pool: aiopar.Pool, hostile: Hostile, round_: int) -> None:
    """Item 1: arguments with shared sub-structures or cycles are checked in bounded
    time on the loop's thread (the submit itself), then run."""
    levels = 21 + round_
    nest, loop = faulty.doubling_nest(levels), faulty.self_containing_list()
    before = time.thread_time()
    deep = pool.submit(faulty.nesting_depth, nest)
    cyclic = pool.submit(faulty.nesting_depth, loop)
    spent = time.thread_time() - before
    values = (await deep, await cyclic, await pool.amap(faulty.nesting_depth, [nest, loop]))
    hostile.expect(
        "shared or cyclic argument",
        values == (levels + 1, -1, [levels + 1, -1]) and spent < 0.05,  # [0] counts too
        f"{values!r}, {spent * 1e3:.1f} ms of the loop thread's CPU for two submits",
    )


async def run_hostile(pool: aiopar.Pool, hostile: Hostile, tmp: str) -> None:
    """Items 1-7 of the hostile list, mixed into the load on the same pool."""
    async with anyio.create_task_group() as group:
        group.start_soon(_exit_with_queued_work, tmp, hostile)
        group.start_soon(_stuck_initializer, hostile)
        group.start_soon(_endless_imap, pool, True, hostile)
        group.start_soon(_endless_imap, pool, False, hostile)
        for round_ in range(HOSTILE_ROUNDS):
            await _hostile_shapes(pool, hostile, round_)
            # 3: SystemExit / KeyboardInterrupt in a task, and in a map chunk.
            ok, detail = await _raises(pool.submit(faulty.exit_with, round_), aiopar.TaskExited)
            hostile.expect("sys.exit in a task", ok, detail)
            ok, detail = await _raises(
                pool.submit(faulty.raise_base, "KeyboardInterrupt"), aiopar.TaskExited
            )
            hostile.expect("KeyboardInterrupt in a task", ok, detail)
            ok, detail = await _raises(
                pool.amap(faulty.exit_on_item, range(8), chunksize=2), aiopar.TaskExited
            )
            hostile.expect("sys.exit in an amap chunk", ok, detail)
            # 2: results and exceptions the parent cannot rebuild.
            ok, detail = await _raises(
                pool.submit(faulty.only_in_its_process, round_), aiopar.ResultLoadError
            )
            hostile.expect("result that cannot be rebuilt", ok, detail)
            ok, detail = await _raises(
                pool.amap(faulty.only_in_its_process_on, range(10), chunksize=2),
                aiopar.ResultLoadError,
            )
            hostile.expect("map result that cannot be rebuilt", ok, detail)
            ok, detail = await _raises(
                pool.submit(faulty.raise_rebuilt_only_here), aiopar.RemoteError
            )
            hostile.expect("exception that cannot be rebuilt", ok, detail)
            # 6: threads and forked children left running by tasks.
            value = await pool.submit(faulty.leave_thread_running, round_)
            hostile.expect("thread left running", value == round_, repr(value))
            pid = await pool.submit(faulty.fork_child_that_lives_on, tmp)
            hostile.expect("forked child", pid in pool.worker_pids(), f"pid {pid}")
            await pool.submit(faulty.fork_sleeping_child, tmp)
            await anyio.sleep(0.05)


# ── leaks ────────────────────────────────────────────────────────────────────────────


def _children() -> set[int]:
    return {
        child.pid
        for child in psutil.Process().children(recursive=True)
        if child.status() != psutil.STATUS_ZOMBIE
    }


def _infrastructure() -> set[int]:
    """multiprocessing's own helpers, which live as long as this process."""
    forkserver = getattr(multiprocessing.forkserver._forkserver, "_forkserver_pid", None)
    tracker = getattr(multiprocessing.resource_tracker._resource_tracker, "_pid", None)
    return {pid for pid in (forkserver, tracker) if pid}


def _segments() -> set[str]:
    """Our segments: aiopar's carry the pid of the process that made them (other
    programs using aiopar on this machine meanwhile are not ours to count)."""
    mine = f"-{os.getpid()}-"
    try:
        names = os.listdir("/dev/shm")
    except FileNotFoundError:
        return set()
    return {n for n in names if n.startswith("psm_") or (n.startswith("aiopar") and mine in n)}


def _still_running(pids: list[int]) -> set[int]:
    """Those of ``pids`` still running (not zombies) after up to 5 s."""

    def running(pid: int) -> bool:
        try:
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    deadline = time.monotonic() + 5.0
    alive = {pid for pid in pids if running(pid)}
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = {pid for pid in alive if running(pid)}
    return alive


def _leaks(children: set[int], segments: set[str]) -> tuple[set[int], set[str]]:
    """What is left after the pool closed, waiting up to 5 s for processes to exit."""
    deadline = time.monotonic() + 5.0
    while True:
        procs = _children() - children - _infrastructure()
        segs = _segments() - segments
        if (not procs and not segs) or time.monotonic() > deadline:
            return procs, segs
        time.sleep(0.05)


# ── main ─────────────────────────────────────────────────────────────────────────────


async def soak(seed: int, workers: int | None, with_hostile: bool = True) -> int:
    plan = make_plan(seed)
    tally = Tally()
    ref = reference(plan)
    got: dict[str, list[Outcome]] = {}
    total_units = LEAVES + JOINS + MAP_CALLS * MAP_ITEMS
    total_units += CHUNK_CALLS * CHUNK_ROWS + REDUCE_CALLS * REDUCE_ITEMS
    children, segments = _children(), _segments()
    began = time.monotonic()
    pool = aiopar.Pool(workers)
    hostile = Hostile()
    tmp = tempfile.TemporaryDirectory(prefix="aiopar-soak-")
    async with pool:
        finished = anyio.Event()
        async with anyio.create_task_group() as group:
            group.start_soon(inject_kills, pool, total_units, tally, finished)
            async with anyio.create_task_group() as work:
                if with_hostile:
                    work.start_soon(run_hostile, pool, hostile, tmp.name)
                work.start_soon(run_graph, pool, plan, tally, got)
                work.start_soon(
                    run_calls, plan.map_calls,
                    lambda items: pool.amap(faulty.soak_item, items, chunksize=4),
                    MAP_ITEMS, "maps", tally, got,
                )  # fmt: skip
                work.start_soon(
                    run_calls, plan.chunk_calls,
                    lambda data: pool.amap_chunks(faulty.soak_chunk, data, chunks=4),
                    CHUNK_ROWS, "chunks", tally, got,
                )  # fmt: skip
                work.start_soon(
                    run_calls, plan.reduce_calls,
                    lambda items: pool.tree_reduce(faulty.soak_add, items),
                    REDUCE_ITEMS, "reduce", tally, got,
                )  # fmt: skip
            finished.set()
        workers_used = pool.workers
    elapsed = time.monotonic() - began

    for key, units, label in (
        ("leaves", 1, "leaf task"),
        ("joins", 1, "join task"),
        ("maps", MAP_ITEMS, "amap call"),
        ("chunks", CHUNK_ROWS, "amap_chunks call"),
        ("reduce", REDUCE_ITEMS, "tree_reduce call"),
    ):
        for index, (expected, outcome) in enumerate(zip(ref[key], got[key], strict=True)):
            tally.check(units, expected, outcome, f"{label} {index}")

    leaked_procs, leaked_segs = _leaks(children, segments)
    # Children that hostile tasks forked and that outlived the pool (must be none).
    sleepers = [int(p.name.split("-")[1]) for p in Path(tmp.name).glob("sleeper-*")]
    leaked_procs |= _still_running(sleepers)
    tmp.cleanup()
    propagated = sum(not (ref["leaves"][a].ok and ref["leaves"][b].ok) for a, b in plan.join_deps)
    own = tally.expected_failures - propagated
    print(f"aiopar soak run: seed {seed}, {workers_used} workers, {elapsed:.1f} s")
    print(
        f"tasks run:          {tally.tasks + KILLS} ({LEAVES + JOINS} graph tasks, "
        f"{MAP_CALLS * MAP_ITEMS} amap items in {MAP_CALLS} calls, "
        f"{CHUNK_CALLS * CHUNK_ROWS} amap_chunks rows in {CHUNK_CALLS} calls, "
        f"{REDUCE_CALLS * REDUCE_ITEMS} tree_reduce items in {REDUCE_CALLS} calls, "
        f"{KILLS} worker kills)"
    )
    print(
        f"failures seen:      {tally.failures_seen} of {tally.expected_failures} expected "
        f"({own} raising on purpose, {propagated} joins failed by a failed dependency); "
        f"wrong failures: {tally.wrong_failures}"
    )
    print(
        f"crashes survived:   {tally.crashes} of {KILLS} injected worker kills "
        f"(at {', '.join(f'{p}%' for p in tally.kills_at)} of the work)"
    )
    if with_hostile:
        kinds = ", ".join(f"{count} {kind}" for kind, count in hostile.kinds.items())
        print(f"hostile phase:      {hostile.passed} of {hostile.checks} behaved ({kinds})")
    print(f"results lost:       {tally.lost}")
    print(f"processes leaked:   {len(leaked_procs)}")
    print(f"segments leaked:    {len(leaked_segs)} (in /dev/shm)")
    for problem in (tally.problems + hostile.problems)[:20]:
        print("  problem:", problem)
    for pid in sorted(leaked_procs):
        try:
            what = " ".join(psutil.Process(pid).cmdline())[:100]
        except psutil.NoSuchProcess:
            what = "(gone since)"
        print("  leaked process:", pid, what)
    for name in sorted(leaked_segs):
        print("  leaked segment:", name)
    bad = (
        tally.lost
        or tally.wrong_failures
        or tally.failures_seen != tally.expected_failures
        or tally.crashes != KILLS
        or leaked_procs
        or leaked_segs
        or tally.tasks != total_units
        or hostile.passed != hostile.checks
    )
    return 1 if bad else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--no-hostile", action="store_true", help="leave out the hostile phase")
    args = parser.parse_args()
    sys.exit(anyio.run(soak, args.seed, args.workers, not args.no_hostile))


if __name__ == "__main__":
    main()
