"""Property tests: aiopar gives the same answers as plain Python, whatever the input.

Each property is a sync test that runs its async body with ``anyio.run`` (hypothesis
and async fixtures do not mix). The module-level functions use the default pool, which
outlives each ``anyio.run``, so an example costs a few round trips to the workers, not
a pool start. Inputs stay small to keep the whole file to a few seconds.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, TypeVar

import anyio
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import aiopar
from tests import workers, workers_extra

T = TypeVar("T")

# When a property fails, hypothesis's pytest plugin imports hypothesis.extra._patching
# (to suggest an @example patch), which imports libcst, which trips a DeprecationWarning
# in mypy_extensions. Under `filterwarnings = error` that turns the failure report into
# an INTERNALERROR that stops the whole session. Importing it here first, with that
# warning silenced, keeps a failing property an ordinary test failure.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import hypothesis.extra._patching  # noqa: F401
    except ImportError:  # pragma: no cover - libcst missing: nothing to pre-import
        pass

# The autouse no_leaks fixture is function-scoped: it checks once around all the
# examples of a test, which is what we want here.
PROPERTY = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

backends = st.sampled_from(["asyncio", "trio"])
chunksizes = st.none() | st.integers(1, 50)
int_lists = st.lists(st.integers(-(10**6), 10**6), max_size=200)


def run(backend: str, func: Callable[..., Awaitable[T]], *args: Any) -> T:
    return anyio.run(func, *args, backend=backend)


def source_of(xs: list[T], kind: str) -> Iterable[T] | AsyncIterator[T]:
    """``xs`` as a list, a generator (no length) or an async generator."""
    if kind == "list":
        return xs
    if kind == "generator":
        return (x for x in xs)

    async def agen() -> AsyncIterator[T]:
        for x in xs:
            yield x

    return agen()


# ── amap / imap ──────────────────────────────────────────────────────────────────────


@PROPERTY
@given(
    xs=int_lists,
    chunksize=chunksizes,
    kind=st.sampled_from(["list", "generator", "async"]),
    backend=backends,
)
def test_amap_equals_map(xs: list[int], chunksize: int | None, kind: str, backend: str) -> None:
    async def main() -> list[int]:
        return await aiopar.amap(workers.square, source_of(xs, kind), chunksize=chunksize)

    assert run(backend, main) == list(map(workers.square, xs))


@PROPERTY
@given(
    xs=int_lists,
    chunksize=chunksizes,
    kind=st.sampled_from(["list", "generator", "async"]),
)
def test_unordered_amap_equals_map_as_a_multiset(
    xs: list[int], chunksize: int | None, kind: str
) -> None:
    async def main() -> list[int]:
        return await aiopar.amap(
            workers.double, source_of(xs, kind), chunksize=chunksize, ordered=False
        )

    result = run("asyncio", main)
    assert len(result) == len(xs)
    assert Counter(result) == Counter(map(workers.double, xs))


@PROPERTY
@given(
    xs=int_lists,
    chunksize=chunksizes,
    max_inflight=st.none() | st.integers(1, 20),
    ordered=st.booleans(),
    kind=st.sampled_from(["list", "async"]),
)
def test_imap_yields_map(
    xs: list[int], chunksize: int | None, max_inflight: int | None, ordered: bool, kind: str
) -> None:
    async def main() -> list[int]:
        stream = aiopar.imap(
            workers.square,
            source_of(xs, kind),
            chunksize=chunksize,
            ordered=ordered,
            max_inflight=max_inflight,
        )
        return [y async for y in stream]

    result = run("asyncio", main)
    expected = list(map(workers.square, xs))
    if ordered:
        assert result == expected
    else:
        assert sorted(result) == sorted(expected)


# ── amap_chunks ──────────────────────────────────────────────────────────────────────

splits = st.one_of(
    st.tuples(st.none() | st.integers(1, 7), st.none()),  # (chunks, chunksize)
    st.tuples(st.none(), st.integers(1, 7)),
)
finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


def expected_pieces(length: int, chunks: int | None, chunksize: int | None) -> int | None:
    """How many pieces the contract implies, or None when it leaves that open."""
    if chunksize is not None:
        return max(1, math.ceil(length / chunksize))
    if chunks is not None:
        return max(1, min(chunks, length))
    return None


@PROPERTY
@given(
    array=hnp.arrays(
        np.float64,
        st.tuples(st.integers(0, 60)) | st.tuples(st.integers(0, 30), st.integers(1, 3)),
        elements=finite,
    ),
    split=splits,
)
@example(array=np.empty(0), split=(None, None))
@example(array=np.array([2.5]), split=(None, None))
@example(array=np.array([2.5]), split=(5, None))
@example(array=np.arange(7.0), split=(3, None))  # uneven pieces: 3, 2, 2
@example(array=np.arange(7.0), split=(None, 3))  # 3, 3, 1
# A large input, over the size that travels through shared memory.
@example(array=np.arange(300_000.0).reshape(100_000, 3), split=(None, None))
def test_amap_chunks_of_elementwise_function_on_arrays(
    array: np.ndarray, split: tuple[int | None, int | None]
) -> None:
    chunks, chunksize = split

    async def main() -> tuple[Any, Any]:
        joined = await aiopar.amap_chunks(workers.negate, array, chunks=chunks, chunksize=chunksize)
        pieces = await aiopar.amap_chunks(
            workers.rows, array, chunks=chunks, chunksize=chunksize, combine=None
        )
        return joined, pieces

    joined, pieces = run("asyncio", main)
    assert isinstance(joined, np.ndarray)
    assert joined.shape == array.shape
    assert joined.dtype == array.dtype
    np.testing.assert_array_equal(joined, -array)
    # the pieces cover every row exactly once
    assert sum(pieces) == len(array)
    count = expected_pieces(len(array), chunks, chunksize)
    if count is not None:
        assert len(pieces) == count
    assert 1 <= len(pieces) <= max(1, len(array))


@PROPERTY
@given(xs=st.lists(st.integers(-1000, 1000), max_size=200), split=splits)
@example(xs=[], split=(None, None))
@example(xs=[4], split=(3, None))
def test_amap_chunks_of_elementwise_function_on_lists(
    xs: list[int], split: tuple[int | None, int | None]
) -> None:
    chunks, chunksize = split

    async def main() -> tuple[Any, Any]:
        joined = await aiopar.amap_chunks(
            workers_extra.negate_each, xs, chunks=chunks, chunksize=chunksize
        )
        pieces = await aiopar.amap_chunks(
            workers.identity, xs, chunks=chunks, chunksize=chunksize, combine=None
        )
        return joined, pieces

    joined, pieces = run("asyncio", main)
    assert type(joined) is list
    assert joined == [-x for x in xs]
    # contiguous pieces, in order, none empty unless the input is
    assert [x for piece in pieces for x in piece] == xs
    assert all(piece for piece in pieces) or pieces == [[]]
    count = expected_pieces(len(xs), chunks, chunksize)
    if count is not None:
        assert len(pieces) == count


@PROPERTY
@given(
    values=st.lists(st.floats(-1e6, 1e6, allow_nan=False), max_size=100),
    split=splits,
    data=st.data(),
)
@example(values=[], split=(None, None), data=None)
def test_amap_chunks_of_elementwise_function_on_pandas(
    values: list[float], split: tuple[int | None, int | None], data: Any
) -> None:
    chunks, chunksize = split
    # a shuffled, non-default index shows that rows keep their labels and order
    order = data.draw(st.permutations(range(len(values)))) if data is not None else []
    index = pd.Index([f"r{i}" for i in order])
    series = pd.Series(values, index=index, name="v", dtype="float64")
    frame = pd.DataFrame({"v": series, "w": series * 2})

    async def main() -> tuple[Any, Any]:
        kwargs: dict[str, Any] = {"chunks": chunks, "chunksize": chunksize}
        return (
            await aiopar.amap_chunks(workers.negate, series, **kwargs),
            await aiopar.amap_chunks(workers.negate, frame, **kwargs),
        )

    got_series, got_frame = run("asyncio", main)
    pd.testing.assert_series_equal(got_series, -series)
    pd.testing.assert_frame_equal(got_frame, -frame)


# ── tree_reduce ──────────────────────────────────────────────────────────────────────

NO_INITIAL = object()
short_strings = st.text(alphabet="abcxyz", max_size=3)


@PROPERTY
@given(
    strings=st.lists(short_strings, max_size=60),
    initial=st.just(NO_INITIAL) | short_strings,
    chunksize=st.sampled_from([None, 1, 2, 3, 5]),
)
@example(strings=["a", "b"], initial=NO_INITIAL, chunksize=None)
@example(strings=[], initial="", chunksize=None)
@example(strings=[], initial=NO_INITIAL, chunksize=None)
def test_tree_reduce_of_associative_function_equals_reduce(
    strings: list[str], initial: Any, chunksize: int | None
) -> None:
    kwargs: dict[str, Any] = {"chunksize": chunksize}
    if initial is not NO_INITIAL:
        kwargs["initial"] = initial

    async def main() -> str:
        return await aiopar.tree_reduce(workers.concat, strings, **kwargs)

    if not strings and initial is NO_INITIAL:
        with pytest.raises(TypeError):
            functools.reduce(workers.concat, strings)  # what we imitate
        with pytest.raises(TypeError, match="empty"):
            run("asyncio", main)
        return
    expected = (
        functools.reduce(workers.concat, strings, initial)
        if initial is not NO_INITIAL
        else functools.reduce(workers.concat, strings)
    )
    assert run("asyncio", main) == expected


@PROPERTY
@given(
    strings=st.lists(short_strings, min_size=1, max_size=30),
    data=st.data(),
    chunksize=st.sampled_from([None, 1, 2, 3, 5]),
    backend=backends,
)
def test_tree_reduce_keeps_order_with_taskrefs_and_awaitables_among_items(
    strings: list[str], data: Any, chunksize: int | None, backend: str
) -> None:
    kinds = data.draw(
        st.lists(
            st.sampled_from(["plain", "ref", "coroutine"]),
            min_size=len(strings),
            max_size=len(strings),
        )
    )

    async def later(value: str) -> str:
        await anyio.sleep(0)
        return value

    async def main() -> str:
        items: list[Any] = []
        for s, kind in zip(strings, kinds, strict=True):
            if kind == "ref":
                items.append(aiopar.submit(workers.identity, s))
            elif kind == "coroutine":
                items.append(later(s))
            else:
                items.append(s)
        return await aiopar.tree_reduce(workers.concat, items, chunksize=chunksize)

    assert run(backend, main) == functools.reduce(workers.concat, strings)


@PROPERTY
@given(
    xs=st.lists(st.integers(-1000, 1000), max_size=100),
    refs=st.lists(st.integers(-1000, 1000), max_size=5),
    chunksize=st.sampled_from([None, 1, 2, 3, 5]),
    initial=st.integers(-10, 10),
)
def test_unordered_tree_reduce_of_commutative_function_equals_sum(
    xs: list[int], refs: list[int], chunksize: int | None, initial: int
) -> None:
    async def main() -> int:
        items: list[Any] = [aiopar.submit(workers.identity, r) for r in refs] + list(xs)
        return await aiopar.tree_reduce(
            workers.add, items, initial=initial, chunksize=chunksize, ordered=False
        )

    assert run("asyncio", main) == initial + sum(xs) + sum(refs)


# ── task graphs ──────────────────────────────────────────────────────────────────────
#
# An argument spec is ("const", c), ("ref", j) for the result of node j, or a list,
# tuple or dict of specs. Node i's specs only refer to nodes j < i, so the graph is a
# DAG. The same specs are turned into values twice: with TaskRefs (for aiopar) and
# with results (for the sequential evaluation in this process).

Spec = tuple[str, Any]


def arg_specs(earlier: int) -> st.SearchStrategy[Spec]:
    const = st.integers(-100, 100).map(lambda c: ("const", c))
    leaf = const if earlier == 0 else st.integers(0, earlier - 1).map(lambda j: ("ref", j)) | const
    return st.recursive(
        leaf,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3).map(lambda xs: ("list", xs)),
            st.lists(inner, max_size=3).map(lambda xs: ("tuple", xs)),
            st.dictionaries(st.sampled_from("abc"), inner, max_size=3).map(lambda d: ("dict", d)),
        ),
        max_leaves=6,
    )


@st.composite
def task_graphs(draw: st.DrawFn, max_nodes: int = 10) -> list[tuple[list[Spec], dict[str, Spec]]]:
    nodes = []
    for i in range(draw(st.integers(1, max_nodes))):
        args = draw(st.lists(arg_specs(i), max_size=3))
        kwargs = draw(st.dictionaries(st.sampled_from(["x", "y"]), arg_specs(i), max_size=2))
        nodes.append((args, kwargs))
    return nodes


def materialize(spec: Spec, env: list[Any]) -> Any:
    kind, value = spec
    if kind == "const":
        return value
    if kind == "ref":
        return env[value]
    if kind == "list":
        return [materialize(s, env) for s in value]
    if kind == "tuple":
        return tuple(materialize(s, env) for s in value)
    return {key: materialize(s, env) for key, s in value.items()}


def references(spec: Spec) -> set[int]:
    kind, value = spec
    if kind == "ref":
        return {value}
    if kind in ("list", "tuple"):
        return set().union(*(references(s) for s in value))
    if kind == "dict":
        return set().union(*(references(s) for s in value.values()))
    return set()


def node_deps(node: tuple[list[Spec], dict[str, Spec]]) -> set[int]:
    args, kwargs = node
    return set().union(*(references(s) for s in [*args, *kwargs.values()]))


@PROPERTY
@given(
    graph=task_graphs(),
    build_in_loop=st.booleans(),
    await_each=st.booleans(),
    backend=backends,
)
def test_task_graph_gives_the_results_of_sequential_evaluation(
    graph: list[tuple[list[Spec], dict[str, Spec]]],
    build_in_loop: bool,
    await_each: bool,
    backend: str,
) -> None:
    expected: list[Any] = []
    for args, kwargs in graph:
        expected.append(
            workers.total(
                *[materialize(s, expected) for s in args],
                **{k: materialize(s, expected) for k, s in kwargs.items()},
            )
        )

    def build() -> list[aiopar.TaskRef[Any]]:
        refs: list[aiopar.TaskRef[Any]] = []
        for args, kwargs in graph:
            refs.append(
                aiopar.submit(
                    workers.total,
                    *[materialize(s, refs) for s in args],
                    **{k: materialize(s, refs) for k, s in kwargs.items()},
                )
            )
        return refs

    async def main(refs: list[aiopar.TaskRef[Any]] | None) -> list[Any]:
        if refs is None:
            refs = build()
        if await_each:  # sinks first: awaiting a dependent before its dependencies
            return [await ref for ref in reversed(refs)][::-1]
        return await aiopar.gather(*refs)

    # submit() needs no running loop: a graph built outside can be awaited in one
    results = run(backend, main, None if build_in_loop else build())
    assert results == expected


@PROPERTY
@given(graph=task_graphs(max_nodes=8), data=st.data())
def test_failures_in_a_task_graph_reach_exactly_the_dependents(
    graph: list[tuple[list[Spec], dict[str, Spec]]], data: Any
) -> None:
    failing = data.draw(st.lists(st.booleans(), min_size=len(graph), max_size=len(graph)))
    # which failed nodes a node's exception may come from: itself (if it ran) or any
    # failed ancestor; an empty set means the node succeeds
    sources: list[set[int]] = []
    expected: list[Any] = []
    for i, (args, kwargs) in enumerate(graph):
        inherited = set().union(*(sources[j] for j in node_deps((args, kwargs))))
        if inherited:
            sources.append(inherited)  # not run: fails with an ancestor's exception
            expected.append(None)
        elif failing[i]:
            sources.append({i})
            expected.append(None)
        else:
            sources.append(set())
            expected.append(
                workers.total(
                    *[materialize(s, expected) for s in args],
                    **{k: materialize(s, expected) for k, s in kwargs.items()},
                )
            )

    async def main() -> list[Any]:
        refs: list[aiopar.TaskRef[Any]] = []
        for i, (args, kwargs) in enumerate(graph):
            refs.append(
                aiopar.submit(
                    workers_extra.total_unless,
                    i,
                    failing[i],
                    *[materialize(s, refs) for s in args],
                    **{k: materialize(s, refs) for k, s in kwargs.items()},
                )
            )
        return await aiopar.gather(*refs, return_exceptions=True)

    results = run("asyncio", main)
    for i, result in enumerate(results):
        if sources[i]:
            assert isinstance(result, ValueError), (i, result)
            assert str(result) in {f"node {k} failed" for k in sources[i]}, (i, result)
        else:
            assert result == expected[i], i
