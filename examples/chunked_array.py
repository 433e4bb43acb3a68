"""Cut a long array into pieces, process them on all cores, join the answers.

This is the chunked numpy array experiment of a well-known ProcessPoolExecutor blog
post, moved to aiopar. The post splits a 1e5-element array into 15 index ranges of
``len(array) // 15`` items, submits ``compute_array(chunk)`` for each to
a ``ProcessPoolExecutor`` and extends one list with the answers. Two things go wrong
there: the last ``len(array) % 15`` items are never processed (the ranges stop at
``15 * (len // 15)``), and the caller blocks while it waits.

With aiopar the whole pattern is one awaited call::

    results = await aiopar.amap_chunks(compute_array, to_work_array, chunks=15)

``amap_chunks`` cuts the data into 15 contiguous pieces that together cover every row,
runs the function on each piece in the worker processes, and joins the answers by their
type: lists are concatenated, numpy arrays go through ``numpy.concatenate`` (and travel
through shared memory rather than pickles), DataFrames through ``pandas.concat``. The
same call works for a pandas DataFrame, which the post mentions; that part runs when
pandas is installed.

Run::

    python examples/chunked_array.py
    python examples/chunked_array.py --quick
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import numpy as np

import aiopar

NUM_CHUNKS = 15  # the post's num_processes


# --- the functions that run in the workers: module level, importable ------------------


def compute_array(array: np.ndarray) -> list[float]:
    """The post's function, unchanged: halve every item, item by item, into a list."""
    return [item / 2 for item in array]


def halve(array: np.ndarray) -> np.ndarray:
    """The numpy way to write it: one vectorised operation, returns an array."""
    return array / 2


def add_half_column(frame: Any) -> Any:
    """Add a column ``half`` = ``x / 2`` to a piece of a DataFrame."""
    return frame.assign(half=frame["x"] / 2)


def check(ok: bool, what: str) -> None:
    """Stop the script with a message if a result is wrong (unlike assert, not optimised away)."""
    if not ok:
        raise SystemExit(f"wrong result: {what}")


# --- the example ------------------------------------------------------------------------


async def main(size: int) -> None:
    """Run the post's computation on an array (and a DataFrame) of ``size`` rows."""
    to_work_array = np.random.default_rng(0).normal(size=size)
    expected = to_work_array / 2

    kept = size // NUM_CHUNKS * NUM_CHUNKS
    print(
        f"the post's {NUM_CHUNKS} index ranges of {size // NUM_CHUNKS} items cover {kept} "
        f"of {size} items: the last {size - kept} are dropped"
    )

    start = time.perf_counter()
    results = await aiopar.amap_chunks(compute_array, to_work_array, chunks=NUM_CHUNKS)
    elapsed = time.perf_counter() - start
    check(len(results) == size, f"compute_array returned {len(results)} items, not {size}")
    check(np.array_equal(np.asarray(results), expected), "compute_array values")
    print(
        f"amap_chunks(compute_array, chunks={NUM_CHUNKS}): {len(results)} of {size} items "
        f"({type(results).__name__}) in {elapsed:.2f} s"
    )

    start = time.perf_counter()
    halves = await aiopar.amap_chunks(halve, to_work_array, chunks=NUM_CHUNKS)
    elapsed = time.perf_counter() - start
    check(isinstance(halves, np.ndarray), f"halve joined into {type(halves).__name__}")
    check(halves.shape == to_work_array.shape, f"halve returned shape {halves.shape}")
    check(np.array_equal(halves, expected), "halve values")
    print(
        f"amap_chunks(halve, chunks={NUM_CHUNKS}): {len(halves)} of {size} items "
        f"(ndarray) in {elapsed:.2f} s"
    )

    try:
        import pandas as pd
    except ImportError:
        print("pandas is not installed: skipping the DataFrame part")
    else:
        frame = pd.DataFrame({"x": to_work_array}, index=pd.RangeIndex(size, name="row"))
        start = time.perf_counter()
        result = await aiopar.amap_chunks(add_half_column, frame, chunks=NUM_CHUNKS)
        elapsed = time.perf_counter() - start
        check(isinstance(result, pd.DataFrame), f"joined into {type(result).__name__}")
        check(len(result) == size, f"DataFrame result has {len(result)} rows, not {size}")
        check(result.index.equals(frame.index), "DataFrame index (order of the rows)")
        check(np.array_equal(result["half"].to_numpy(), expected), "DataFrame column half")
        print(
            f"amap_chunks(add_half_column, DataFrame, chunks={NUM_CHUNKS}): "
            f"{len(result)} of {size} rows in {elapsed:.2f} s"
        )

    await aiopar.shutdown()
    print("nothing dropped: every result has as many items as the input")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1e4 items instead of 1e5")
    args = parser.parse_args()
    asyncio.run(main(10_000 if args.quick else 100_000))
