"""aiopar's pytest plugin: a session-wide pool, the options that shape it, a leak check.

Registered through the ``pytest11`` entry point ``aiopar`` (disable it with
``-p no:aiopar``). It adds nothing a suite does not ask for: no autouse fixture, no
event-loop fixture, no warning. What a suite may ask for:

* the fixture ``aiopar_pool``: one :class:`aiopar.Pool` for the whole session (each
  pytest-xdist worker has its own), closed at the end. It is a plain (sync) fixture,
  so tests on any loop use it: pytest-asyncio's function, module or session loops in
  strict or auto mode, anyio's asyncio and trio backends;
* the options ``--aiopar-workers N``, ``--aiopar-inline`` (the session pool and the
  default pool run jobs in the test process: ``breakpoint()`` in a task stops there,
  coverage counts its lines), ``--aiopar-start-method``;
* the leak check: the fixture ``aiopar_no_leaks``, the marker
  ``@pytest.mark.aiopar_no_leaks``, or ``--aiopar-no-leaks`` for every test, fail a
  test that leaves child processes, aiopar shared-memory segments or open pools.

Everything here runs in pytest's main thread, outside any event loop.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from . import _leaks
from ._inline import ENVIRONMENT_VARIABLE, inline_from_environment
from ._pool import Pool, default_workers

__all__ = ["aiopar_no_leaks", "aiopar_pool"]

_LEAK_CHECK = "aiopar_no_leaks"
_POOL_KEY = pytest.StashKey[Pool]()


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"--aiopar-workers takes a whole number, got {text!r}") from None
    if value < 1:
        raise ValueError(f"--aiopar-workers must be at least 1, got {value}")
    return value


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("aiopar", "aiopar (process pools for async code)")
    group.addoption(
        "--aiopar-workers",
        type=_positive,
        default=None,
        metavar="N",
        help="worker processes of the aiopar_pool fixture (default: the CPUs this "
        "process may use, shared among pytest-xdist workers)",
    )
    group.addoption(
        "--aiopar-inline",
        action="store_true",
        default=False,
        help="run aiopar jobs in the test process (aiopar_pool and the default pool, "
        f"as {ENVIRONMENT_VARIABLE}=1 does): breakpoint() in a task stops there, "
        "coverage counts its lines",
    )
    group.addoption(
        "--aiopar-start-method",
        choices=["forkserver", "spawn"],
        default=None,
        help="how the aiopar_pool fixture starts its workers (default: forkserver where available)",
    )
    group.addoption(
        "--aiopar-no-leaks",
        action="store_true",
        default=False,
        help="fail every test that leaves child processes, aiopar shared-memory segments "
        "or open aiopar pools behind (as the aiopar_no_leaks fixture does)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{_LEAK_CHECK}: fail the test if it leaves child processes, aiopar shared-memory "
        "segments or open aiopar pools behind",
    )
    if config.getoption("aiopar_inline") and not os.environ.get(ENVIRONMENT_VARIABLE):
        # The default pool too (aiopar.amap, aiopar.submit...); xdist workers inherit it.
        os.environ[ENVIRONMENT_VARIABLE] = "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Add the leak check to the tests that ask for it (the marker, or the option for
    all), first among their function-scoped fixtures so that it sees them all torn
    down."""
    every = config.getoption("aiopar_no_leaks")
    for item in items:
        names = getattr(item, "fixturenames", None)
        if not isinstance(names, list) or _LEAK_CHECK in names:
            continue
        if every or item.get_closest_marker(_LEAK_CHECK) is not None:
            names.insert(_first_function_scoped(item, names), _LEAK_CHECK)


def _first_function_scoped(item: pytest.Item, names: list[str]) -> int:
    """Where the function-scoped fixtures start in ``names`` (sorted widest scope first)."""
    definitions: dict[str, Any] = getattr(
        getattr(item, "_fixtureinfo", None), "name2fixturedefs", {}
    )
    for index, name in enumerate(names):
        defs = definitions.get(name)
        if not defs or getattr(defs[-1], "scope", "function") == "function":
            return index
    return len(names)


def _workers(config: pytest.Config) -> int:
    """``--aiopar-workers``, or the CPUs shared among the xdist workers running."""
    workers: int | None = config.getoption("aiopar_workers")
    if workers is not None:
        return workers
    share = os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")
    return max(1, default_workers() // max(1, int(share) if share.isdigit() else 1))


@pytest.fixture(scope="session")
def aiopar_pool(request: pytest.FixtureRequest) -> Iterator[Pool]:
    """One :class:`aiopar.Pool` for the whole test session, closed at its end.

    Its workers start on first use and serve every test after, on any event loop or
    backend: tests need not pay a pool start each. Shaped by ``--aiopar-workers``,
    ``--aiopar-inline`` (or ``AIOPAR_INLINE``) and ``--aiopar-start-method``.
    """
    config = request.config
    inline = True if config.getoption("aiopar_inline") else inline_from_environment()
    pool = Pool(
        _workers(config),
        start_method=config.getoption("aiopar_start_method"),
        inline=inline,
    )
    pool.open()
    config.stash[_POOL_KEY] = pool
    try:
        yield pool
    finally:
        pool.close()
        del config.stash[_POOL_KEY]


@pytest.fixture
def aiopar_no_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail the test if it leaves child processes, aiopar shared-memory segments or
    open pools behind.

    Pools already open when the test starts (``aiopar_pool``, the default pool, a
    pool of a wider-scoped fixture) are not counted, nor the workers they start or
    the segments they keep for reuse; a pool the test opens must be closed by its
    end (or by the teardown of its function-scoped fixture).
    """
    snapshot = _leaks.Snapshot()
    yield
    session_pool = request.config.stash.get(_POOL_KEY, None)
    leaks = snapshot.leaks(keep=[session_pool] if session_pool is not None else [])
    if leaks:
        pytest.fail(f"the test left behind {leaks}", pytrace=False)
