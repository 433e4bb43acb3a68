"""amap, imap and amap_chunks: results, inputs, chunking, back-pressure, progress."""

from __future__ import annotations

import contextlib
import io
from collections.abc import AsyncIterator

import numpy as np
import pandas as pd
import pytest

import aiopar
from tests import workers


@pytest.mark.asyncio
async def test_amap_equals_map_for_cheap_and_slow_functions() -> None:
    xs = list(range(2000))
    assert await aiopar.amap(workers.square, xs) == [x * x for x in xs]
    assert await aiopar.amap(workers.sleep_then, [1, 2, 3]) == [1, 2, 3]
    assert await aiopar.amap(workers.square, []) == []


@pytest.mark.asyncio
async def test_amap_takes_generators_and_async_iterables() -> None:
    async def numbers() -> AsyncIterator[int]:
        for x in range(50):
            yield x

    assert await aiopar.amap(workers.double, (x for x in range(50))) == [2 * x for x in range(50)]
    assert await aiopar.amap(workers.double, numbers()) == [2 * x for x in range(50)]


@pytest.mark.asyncio
async def test_amap_runs_lambdas_and_closures() -> None:
    offset = 10
    assert await aiopar.amap(lambda x: x + offset, [1, 2]) == [11, 12]


@pytest.mark.asyncio
async def test_unordered_amap_returns_every_result_once() -> None:
    results = await aiopar.amap(workers.square, range(100), ordered=False, chunksize=7)
    assert sorted(results) == [x * x for x in range(100)]


@pytest.mark.asyncio
async def test_automatic_chunks_are_large_for_cheap_items_and_single_for_slow_ones() -> None:
    # The number of distinct worker calls is visible through the chunk labels only, so
    # measure it from the pool's side: count jobs by wrapping the dispatcher.
    pool = aiopar.get_default_pool()
    dispatcher = pool._require_dispatcher()
    sent: list[int] = []
    original = dispatcher.submit

    def counting_submit(job):  # type: ignore[no-untyped-def]
        sent.append(len(job.payload) if isinstance(job.payload, list) else 1)
        original(job)

    dispatcher.submit = counting_submit  # type: ignore[method-assign]
    try:
        await aiopar.amap(workers.square, range(20_000))
        cheap = list(sent)
        sent.clear()
        await aiopar.amap(workers.sleep_then, range(6))
        slow = list(sent)
    finally:
        del dispatcher.submit
    assert sum(cheap) == 20_000 and len(cheap) < 40, cheap
    assert max(cheap) > 1000
    assert slow == [1] * 6


@pytest.mark.asyncio
async def test_a_list_is_cut_into_chunks_by_slicing(monkeypatch: pytest.MonkeyPatch) -> None:
    from aiopar import _maps

    def item_by_item(source: object, size: int) -> None:
        raise AssertionError("a list was taken item by item")

    monkeypatch.setattr(_maps, "take", item_by_item)
    xs = list(range(5000))
    squares = [x * x for x in xs]
    assert await aiopar.amap(workers.square, xs) == squares
    assert sorted(await aiopar.amap(workers.square, xs, chunksize=333, ordered=False)) == squares
    assert [y async for y in aiopar.imap(workers.square, xs, max_inflight=100)] == squares


@pytest.mark.asyncio
async def test_imap_streams_an_endless_source_with_bounded_inflight() -> None:
    taken = 0

    async def endless() -> AsyncIterator[int]:
        nonlocal taken
        n = 0
        while True:
            taken += 1
            yield n
            n += 1

    seen = []
    highest_lead = 0
    async with contextlib.aclosing(aiopar.imap(workers.square, endless(), max_inflight=8)) as it:
        async for value in it:
            seen.append(value)
            highest_lead = max(highest_lead, taken - len(seen))
            if len(seen) == 100:
                break
    assert seen == [x * x for x in range(100)]
    assert highest_lead <= 8


@pytest.mark.asyncio
async def test_imap_unordered_yields_everything() -> None:
    out = [v async for v in aiopar.imap(workers.square, range(30), ordered=False, chunksize=4)]
    assert sorted(out) == [x * x for x in range(30)]


@pytest.mark.parametrize("length", [0, 1, 2, 3, 15, 100_001])
@pytest.mark.asyncio
async def test_amap_chunks_never_drops_the_tail(length: int) -> None:
    data = np.arange(length, dtype=np.float64)
    result = await aiopar.amap_chunks(workers.negate, data, chunks=15)
    np.testing.assert_array_equal(result, -data)


@pytest.mark.asyncio
async def test_amap_chunks_splits_2d_arrays_on_axis_0() -> None:
    data = np.arange(24.0).reshape(8, 3)
    sums = await aiopar.amap_chunks(workers.sum_chunk, data, chunksize=3, combine=None)
    assert len(sums) == 3
    np.testing.assert_array_equal(sum(sums), data.sum(axis=0))


@pytest.mark.asyncio
async def test_amap_chunks_on_frames_and_series() -> None:
    frame = pd.DataFrame({"a": range(10), "b": range(10, 20)}, index=list("abcdefghij"))
    pd.testing.assert_frame_equal(await aiopar.amap_chunks(workers.negate, frame, chunks=3), -frame)
    series = frame["a"]
    pd.testing.assert_series_equal(await aiopar.amap_chunks(workers.double, series), series * 2)
    assert await aiopar.amap_chunks(workers.rows, frame, chunks=4, combine=sum) == 10


@pytest.mark.asyncio
async def test_amap_chunks_on_sequences_and_combine_modes() -> None:
    items = list(range(11))
    assert await aiopar.amap_chunks(workers.identity, items, chunks=4) == items
    parts = await aiopar.amap_chunks(workers.sum_chunk, items, chunks=4, combine=None)
    assert len(parts) == 4 and sum(parts) == sum(items)
    assert await aiopar.amap_chunks(workers.sum_chunk, items, combine=sum) == sum(items)
    assert await aiopar.amap_chunks(workers.identity, "abcdef", chunks=2, combine="".join) == (
        "abcdef"
    )


@pytest.mark.asyncio
async def test_amap_chunks_cannot_concat_scalars_and_says_what_to_do() -> None:
    with pytest.raises(TypeError, match="combine=None"):
        await aiopar.amap_chunks(workers.sum_chunk, list(range(10)))


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"chunks": 0}, ValueError, "chunks"),
        ({"chunksize": 0}, ValueError, "chunksize"),
        ({"chunksize": -2}, ValueError, "chunksize"),
        ({"chunks": 2, "chunksize": 2}, ValueError, "not both"),
        ({"combine": "sum"}, ValueError, "combine"),
    ],
)
@pytest.mark.asyncio
async def test_amap_chunks_bad_arguments(kwargs: dict[str, object], error: type, name: str) -> None:
    with pytest.raises(error, match=name):
        await aiopar.amap_chunks(workers.negate, np.ones(4), **kwargs)  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_amap_chunks_refuses_unsplittable_data() -> None:
    with pytest.raises(TypeError, match="amap"):
        await aiopar.amap_chunks(workers.negate, {1, 2, 3})
    with pytest.raises(ValueError, match="0-d"):
        await aiopar.amap_chunks(workers.negate, np.float64(3.0))


@pytest.mark.asyncio
async def test_bad_map_arguments_fail_before_any_work() -> None:
    with pytest.raises(ValueError, match="chunksize"):
        await aiopar.amap(workers.square, [1], chunksize=0)
    with pytest.raises(ValueError, match="max_inflight"):
        [x async for x in aiopar.imap(workers.square, [1], max_inflight=0)]
    with pytest.raises(TypeError, match="items"):
        await aiopar.amap(workers.square, 42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="func"):
        await aiopar.amap(42, [1])  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_progress_bar_counts_every_item(monkeypatch: pytest.MonkeyPatch) -> None:
    import tqdm.auto

    stream = io.StringIO()
    real = tqdm.auto.tqdm

    def visible_bar(*args, **kwargs):  # type: ignore[no-untyped-def]
        kwargs.update(file=stream, disable=False, mininterval=0)
        return real(*args, **kwargs)

    monkeypatch.setattr(tqdm.auto, "tqdm", visible_bar)
    await aiopar.amap(workers.square, range(50), chunksize=10, progress=True)
    assert "50/50" in stream.getvalue()
    await aiopar.amap_chunks(workers.negate, np.ones(10), chunks=5, progress=True)
    assert "5/5" in stream.getvalue()
