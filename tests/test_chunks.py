"""Unit tests of aiopar/_chunks.py: split, check_chunk_args, combine, ChunkSizer, take.

Pure functions and a small state machine: no worker processes, no event loop but for
``take`` (run with ``anyio.run``).
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from typing import Any

import anyio
import numpy as np
import pandas as pd
import pytest

from aiopar._chunks import (
    MAX_CHUNK_SECONDS,
    TAIL_CHUNK_SECONDS,
    TAIL_ITEMS,
    TAIL_SHARES,
    TARGET_CHUNK_SECONDS,
    ChunkSizer,
    check_chunk_args,
    combine,
    split,
    take,
)

# ── split ─────────────────────────────────────────────────────────────────────────────


def _lengths(pieces: list[Any]) -> list[int]:
    return [len(piece) for piece in pieces]


@pytest.mark.parametrize("length", range(13))
@pytest.mark.parametrize("chunks", [None, 1, 2, 3, 4, 5, 8])
def test_split_by_count_keeps_every_item_in_order(length: int, chunks: int | None) -> None:
    data = list(range(length))
    pieces = split(data, chunks=chunks, chunksize=None, workers=3)
    wanted = chunks if chunks is not None else 3
    assert len(pieces) == max(1, min(wanted, length))
    assert [x for piece in pieces for x in piece] == data  # contiguous, nothing dropped
    if length:
        assert all(len(piece) >= 1 for piece in pieces)
        assert max(_lengths(pieces)) - min(_lengths(pieces)) <= 1  # balanced
    else:
        assert pieces == [[]]


@pytest.mark.parametrize("length", range(13))
@pytest.mark.parametrize("chunksize", [1, 2, 3, 5, 12, 20])
def test_split_by_size_keeps_every_item_in_order(length: int, chunksize: int) -> None:
    data = list(range(length))
    pieces = split(data, chunks=None, chunksize=chunksize, workers=3)
    assert len(pieces) == max(1, math.ceil(length / chunksize))
    assert [x for piece in pieces for x in piece] == data
    # every piece but the last is full; the last holds the rest
    assert all(len(piece) == chunksize for piece in pieces[:-1])
    assert len(pieces[-1]) == (length - chunksize * (len(pieces) - 1))


def test_split_examples_by_count_and_by_size() -> None:
    data = np.arange(10)
    assert _lengths(split(data, chunks=3, chunksize=None, workers=2)) == [4, 3, 3]
    assert _lengths(split(data, chunks=None, chunksize=3, workers=2)) == [3, 3, 3, 1]
    assert _lengths(split(data, chunks=None, chunksize=None, workers=4)) == [3, 3, 2, 2]
    assert _lengths(split(data, chunks=None, chunksize=None, workers=1)) == [10]
    assert _lengths(split(data, chunks=None, chunksize=100, workers=2)) == [10]
    # more pieces asked for than there are items: one item each, no empty piece
    assert _lengths(split(data[:3], chunks=7, chunksize=None, workers=2)) == [1, 1, 1]
    assert _lengths(split(data[:2], chunks=None, chunksize=None, workers=8)) == [1, 1]


@pytest.mark.parametrize(
    ("chunks", "chunksize"), [(None, None), (4, None), (None, 4)], ids=["auto", "chunks", "size"]
)
def test_split_of_empty_input_gives_one_empty_piece(
    chunks: int | None, chunksize: int | None
) -> None:
    array = np.empty((0, 3))
    pieces = split(array, chunks=chunks, chunksize=chunksize, workers=2)
    assert len(pieces) == 1
    assert pieces[0].shape == (0, 3)
    assert split([], chunks=chunks, chunksize=chunksize, workers=2) == [[]]
    frames = split(pd.DataFrame({"a": []}), chunks=chunks, chunksize=chunksize, workers=2)
    assert len(frames) == 1 and len(frames[0]) == 0
    assert list(frames[0].columns) == ["a"]


def test_split_of_2d_array_cuts_axis_0_into_views() -> None:
    data = np.arange(30.0).reshape(10, 3)
    pieces = split(data, chunks=4, chunksize=None, workers=2)
    assert [piece.shape for piece in pieces] == [(3, 3), (3, 3), (2, 3), (2, 3)]
    np.testing.assert_array_equal(np.concatenate(pieces), data)
    assert all(np.shares_memory(piece, data) for piece in pieces)  # views, not copies


def test_split_refuses_0d_array() -> None:
    with pytest.raises(ValueError, match="0-d"):
        split(np.array(3.0), chunks=None, chunksize=None, workers=2)


def test_split_of_dataframe_and_series_keeps_rows_and_index() -> None:
    frame = pd.DataFrame({"a": range(7), "b": list("abcdefg")}, index=list("pqrstuv"))
    pieces = split(frame, chunks=3, chunksize=None, workers=2)
    assert [len(piece) for piece in pieces] == [3, 2, 2]
    assert all(isinstance(piece, pd.DataFrame) for piece in pieces)
    pd.testing.assert_frame_equal(pd.concat(pieces), frame)
    assert list(pieces[1].index) == ["s", "t"]

    series = pd.Series([1.5, 2.5, 3.5, 4.5, 5.5], index=[10, 20, 30, 40, 50], name="x")
    parts = split(series, chunks=None, chunksize=2, workers=2)
    assert [list(part.index) for part in parts] == [[10, 20], [30, 40], [50]]
    assert all(isinstance(part, pd.Series) for part in parts)
    pd.testing.assert_series_equal(pd.concat(parts), series)


def test_split_of_sequences_slices_them() -> None:
    assert split((1, 2, 3, 4, 5), chunks=2, chunksize=None, workers=4) == [(1, 2, 3), (4, 5)]
    assert split(range(5), chunks=None, chunksize=2, workers=4) == [
        range(0, 2),
        range(2, 4),
        range(4, 5),
    ]
    assert split("abcde", chunks=None, chunksize=3, workers=4) == ["abc", "de"]


@pytest.mark.parametrize("data", [{1, 2, 3}, (x for x in range(3)), 42, None])
def test_split_refuses_what_cannot_be_sliced(data: object) -> None:
    with pytest.raises(TypeError, match=type(data).__name__):
        split(data, chunks=None, chunksize=None, workers=2)


# ── check_chunk_args ─────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("chunks", "chunksize"), [(None, None), (1, None), (None, 1), (64, None), (None, 1000)]
)
def test_check_chunk_args_accepts_one_positive_int_or_none(
    chunks: int | None, chunksize: int | None
) -> None:
    check_chunk_args(chunks, chunksize)  # raises nothing


@pytest.mark.parametrize(
    ("chunks", "chunksize", "error", "name"),
    [
        (0, None, ValueError, "chunks"),
        (-3, None, ValueError, "chunks"),
        (None, 0, ValueError, "chunksize"),
        (None, -1, ValueError, "chunksize"),
        (1.5, None, TypeError, "chunks"),
        (True, None, TypeError, "chunks"),
        (None, "4", TypeError, "chunksize"),
        (None, 2.0, TypeError, "chunksize"),
    ],
)
def test_check_chunk_args_errors_name_the_argument(
    chunks: Any, chunksize: Any, error: type[Exception], name: str
) -> None:
    # \b keeps "chunks" from matching inside "chunksize"
    with pytest.raises(error, match=rf"\b{name}\b") as info:
        check_chunk_args(chunks, chunksize)
    bad = chunks if name == "chunks" else chunksize
    assert repr(bad) in str(info.value) or str(bad) in str(info.value)


def test_check_chunk_args_refuses_both() -> None:
    with pytest.raises(ValueError, match="not both") as info:
        check_chunk_args(2, 3)
    assert "chunks=2" in str(info.value)
    assert "chunksize=3" in str(info.value)


# ── combine ──────────────────────────────────────────────────────────────────────────


def test_combine_concatenates_arrays() -> None:
    joined = combine([np.array([1, 2]), np.array([3]), np.array([], dtype=int)], "concat")
    np.testing.assert_array_equal(joined, np.array([1, 2, 3]))
    rows = combine([np.ones((2, 3)), np.zeros((1, 3))], "concat")
    assert rows.shape == (3, 3)
    np.testing.assert_array_equal(rows[2], np.zeros(3))


def test_combine_stacks_0d_answers() -> None:
    joined = combine([np.float64(1.5), np.float64(2.5), np.array(3.5)], "concat")
    assert isinstance(joined, np.ndarray)
    np.testing.assert_array_equal(joined, np.array([1.5, 2.5, 3.5]))
    assert combine([np.int64(7)], "concat").tolist() == [7]


def test_combine_concatenates_frames_and_series() -> None:
    a = pd.DataFrame({"x": [1, 2]}, index=[0, 1])
    b = pd.DataFrame({"x": [3]}, index=[2])
    pd.testing.assert_frame_equal(combine([a, b], "concat"), pd.DataFrame({"x": [1, 2, 3]}))
    s = combine([pd.Series([1.0], index=["a"]), pd.Series([2.0], index=["b"])], "concat")
    pd.testing.assert_series_equal(s, pd.Series([1.0, 2.0], index=["a", "b"]))


def test_combine_concatenates_lists_tuples_and_ranges_into_a_list() -> None:
    assert combine([[1, 2], [3], []], "concat") == [1, 2, 3]
    assert combine([(1,), (2, 3)], "concat") == [1, 2, 3]
    assert combine([range(2), range(2, 4)], "concat") == [0, 1, 2, 3]
    assert combine([[]], "concat") == []


def test_combine_none_returns_the_answers_and_a_callable_receives_them() -> None:
    answers = [1, "two", None]
    assert combine(answers, None) is answers
    received: list[Any] = []

    def join(parts: list[Any]) -> str:
        received.append(parts)
        return "joined"

    assert combine(answers, join) == "joined"
    assert received == [answers]
    assert combine([3, 4, 5], sum) == 12


@pytest.mark.parametrize(
    "answers", [[1, 2], [{"a": 1}, {"b": 2}], ["ab", "cd"], [None, None]], ids=repr
)
def test_combine_concat_of_unjoinable_answers_says_what_to_do(answers: list[Any]) -> None:
    with pytest.raises(TypeError, match="combine=None") as info:
        combine(answers, "concat")
    assert type(answers[0]).__name__ in str(info.value)


def test_combine_refuses_unknown_mode() -> None:
    with pytest.raises(ValueError, match="'sum'"):
        combine([[1]], "sum")


# ── ChunkSizer ───────────────────────────────────────────────────────────────────────


def test_fixed_chunksize_is_always_ready_and_never_adapts() -> None:
    sizer = ChunkSizer(workers=2, chunksize=5, length=12)
    sizes = []
    for _ in range(4):
        assert sizer.ready()
        sizes.append(sizer.next_size())
        sizer.observe(5, 10.0)  # slow items change nothing
    assert sizes == [5, 5, 5, 5]


@pytest.mark.parametrize("workers", [1, 2, 3, 8])
def test_probing_sends_one_item_per_worker_then_waits_for_a_measurement(workers: int) -> None:
    sizer = ChunkSizer(workers=workers, chunksize=None, length=1000)
    probes = []
    while sizer.ready():
        probes.append(sizer.next_size())
        assert len(probes) <= workers, "kept probing beyond one item per worker"
    assert probes == [1] * workers
    sizer.observe(0, 1.0)  # an empty chunk measures nothing
    assert not sizer.ready()
    sizer.observe(1, 0.001)
    assert sizer.ready()


def test_cheap_items_make_large_chunks_in_shares_of_what_remains() -> None:
    sizer = ChunkSizer(workers=2, chunksize=None, length=1_000_000)
    assert [sizer.next_size(), sizer.next_size()] == [1, 1]  # probes; 999,998 remain
    sizer.observe(1, 1e-6)  # 1 µs per item
    assert sizer.next_size() == 250_000  # ceil(999,998 / (2 * 2))
    assert sizer.next_size() == 187_500  # ceil(749,998 / 4)
    assert sizer.next_size() == 140_625  # ceil(562,498 / 4)


def test_cheap_items_worth_less_than_the_tail_go_in_one_chunk() -> None:
    sizer = ChunkSizer(workers=2, chunksize=None, length=1000)
    sizer.next_size()
    sizer.next_size()
    sizer.observe(1, 1e-6)  # the 998 left are 1 ms of work: not worth cutting
    assert sizer.next_size() == 998


def _guided_sizes(length: int, seconds_per_item: float, workers: int = 2) -> list[int]:
    sizer = ChunkSizer(workers=workers, chunksize=None, length=length)
    sizes = [sizer.next_size() for _ in range(workers)]  # the probes
    sizer.observe(1, seconds_per_item)
    while sum(sizes) < length:
        sizes.append(sizer.next_size())
    return sizes


def test_known_count_goes_in_shrinking_shares_ending_with_single_items() -> None:
    # 64 items of 17 ms on 2 workers: a quarter of what is left each time, not 32
    # chunks of 2 items (the 50 ms target), and the workers finish together.
    sizes = _guided_sizes(64, 0.017)
    assert sizes == [1, 1, 16, 12, 9, 7, 5, 4, 3, 2, 1, 1, 1, 1]
    assert sum(sizes) == 64


def test_guided_chunks_stop_shrinking_at_the_tail_duration() -> None:
    sizes = _guided_sizes(1000, 0.001)  # 1 ms items: no chunk under 10 ms of work
    assert min(sizes[2:]) == int(TAIL_CHUNK_SECONDS / 0.001) == 10
    assert sizes[2:] == sorted(sizes[2:], reverse=True)
    assert len(sizes) < 1000 * 0.001 / TARGET_CHUNK_SECONDS  # fewer than 50 ms chunks


def test_until_a_chunk_is_measured_at_most_two_chunks_per_worker_are_out() -> None:
    # A probe item overstates a cheap item's cost (timer, cold cache): chunks sized from
    # it alone would be far too small, so few are sent before a real chunk comes back.
    sizer = ChunkSizer(workers=2, chunksize=None, length=100_000)
    assert [sizer.next_size(), sizer.next_size()] == [1, 1]
    sizer.observe(1, 1e-5)  # one probe back; the other is still out
    assert sizer.ready(3) and not sizer.ready(4)
    first = [sizer.next_size() for _ in range(3)]
    sizer.observe(1, 1e-5)  # the second probe
    assert sizer.ready(3) and not sizer.ready(4)
    sizer.next_size()
    sizer.observe(first[0], first[0] * 1e-7)  # a chunk of many items: now measured
    assert sizer.ready(3) and sizer.ready(8)


def _sizes_after_a_chunk(length: int, probe_s: float, item_s: float) -> list[int]:
    """Sizes of a guided map on 2 workers whose probes took ``probe_s`` each and whose
    first chunk measured ``item_s`` per item (the second is still out)."""
    sizer = ChunkSizer(workers=2, chunksize=None, length=length)
    sizes = [sizer.next_size(), sizer.next_size()]
    sizer.observe(1, probe_s)
    sizer.observe(1, probe_s)
    sizes += [sizer.next_size(), sizer.next_size()]
    sizer.observe(sizes[2], sizes[2] * item_s)
    while sum(sizes) < length:
        sizes.append(sizer.next_size())
    return sizes


def test_a_measured_chunk_outweighs_the_probes_that_overstated_the_cost() -> None:
    # 100,000 items of 0.1 µs whose probe items took 10 µs: 9 chunks, as with the
    # true cost known, not the 20-odd the probes' figure would cut.
    sizes = _sizes_after_a_chunk(100_000, 1e-5, 1e-7)
    assert sizes == [1, 1, 25_000, 18_750, 14_062, 12_500, 12_500, 12_500, 4_686]


def test_cheap_items_are_spread_over_every_worker_in_a_few_chunks_each() -> None:
    # 10 ms of work in all, under the tail duration, yet not one chunk for one worker:
    # no chunk needs more than an eighth of the items (2 workers, TAIL_SHARES of them).
    sizes = _sizes_after_a_chunk(100_000, 1e-7, 1e-7)
    assert max(sizes) <= 100_000 // 4  # guided shares first, then
    assert min(sizes[2:-1]) == 100_000 // (TAIL_SHARES * 2)  # never under an eighth
    assert len(sizes) <= 2 + 2 * TAIL_SHARES + 1
    # fewer items than TAIL_ITEMS are not worth spreading: the rest go in one chunk
    assert _sizes_after_a_chunk(TAIL_ITEMS, 1e-7, 1e-7)[2] == TAIL_ITEMS - 2


def test_guided_chunks_never_exceed_the_largest_duration() -> None:
    sizes = _guided_sizes(10_000, 0.01)  # a quarter of 100 s would be 25 s of work
    assert max(sizes) == int(MAX_CHUNK_SECONDS / 0.01) == 50
    assert sum(sizes) >= 10_000


def test_cheap_items_of_unknown_count_make_chunks_of_the_target_duration() -> None:
    sizer = ChunkSizer(workers=2, chunksize=None, length=None)
    sizer.next_size()
    sizer.observe(1, 1e-6)
    assert sizer.next_size() == int(TARGET_CHUNK_SECONDS / 1e-6) == 50_000
    medium = ChunkSizer(workers=2, chunksize=None, length=None)
    medium.next_size()
    medium.observe(10, 0.01)  # 1 ms per item
    assert medium.next_size() == 50


def test_slow_items_go_one_per_chunk() -> None:
    sizer = ChunkSizer(workers=2, chunksize=None, length=100)
    sizer.next_size()
    sizer.next_size()
    sizer.observe(1, 0.5)
    assert [sizer.next_size() for _ in range(5)] == [1, 1, 1, 1, 1]


def test_sizes_adapt_when_items_turn_out_cheaper() -> None:
    sizer = ChunkSizer(workers=2, chunksize=None, length=None)
    sizer.next_size()
    sizer.observe(1, 1.0)
    assert sizer.next_size() == 1
    for _ in range(30):
        sizer.observe(100, 1e-4)  # now 1 µs per item
    assert sizer.next_size() > 1000


def test_next_size_is_at_least_one_when_nothing_remains() -> None:
    sizer = ChunkSizer(workers=2, chunksize=None, length=2)
    sizer.next_size()
    sizer.next_size()
    sizer.observe(1, 1e-6)
    assert sizer.next_size() == 1


# ── take ─────────────────────────────────────────────────────────────────────────────


def test_take_from_sync_and_async_iterators() -> None:
    async def numbers() -> AsyncIterator[int]:
        for x in range(5):
            yield x

    async def main() -> list[list[int]]:
        sync_source = iter(range(5))
        async_source = numbers()
        got = []
        for source in (sync_source, async_source):
            got += [await take(source, 3), await take(source, 3), await take(source, 3)]
        return got

    assert anyio.run(main) == [[0, 1, 2], [3, 4], [], [0, 1, 2], [3, 4], []]


def test_big_arrays_are_cut_into_pieces_of_at_most_piece_bytes_by_default() -> None:
    from aiopar._chunks import PIECE_BYTES

    big = np.broadcast_to(np.float64(0.0), (5_000_000,))  # 40 MB of rows, no memory
    pieces = split(big, chunks=None, chunksize=None, workers=2)
    assert len(pieces) == 4  # a multiple of the workers
    assert all(piece.nbytes <= PIECE_BYTES for piece in pieces)
    assert sum(len(piece) for piece in pieces) == len(big)
    assert len(split(big, chunks=2, chunksize=None, workers=2)) == 2  # asked for: obeyed
    assert len(split(np.zeros(1000), chunks=None, chunksize=None, workers=3)) == 3
