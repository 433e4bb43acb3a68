"""The functions the demo sends to the workers, and the Ray tutorial's sizes of them.

They live at module level of this module, so the workers import them by name
(``aiopar.demo.work.slow_add``). Each runs in a worker process for the aiopar version
of an experiment, and in the main thread for its sequential version.
"""

from __future__ import annotations

import time

import numpy as np
import numpy.typing as npt

__all__ = [
    "FloatArray",
    "create_matrix",
    "halve_repeatedly",
    "multiply_matrices",
    "sleep_then_return",
    "slow_add",
]

FloatArray = npt.NDArray[np.float64]


def sleep_then_return(x: int, seconds: float) -> int:
    """Sleep ``seconds`` (blocking), then return ``x``: the Ray tutorial's ``f``."""
    time.sleep(seconds)
    return x


def create_matrix(size: int, seed: int) -> FloatArray:
    """Return a ``size`` x ``size`` matrix of standard normal numbers drawn from ``seed``."""
    return np.random.default_rng(seed).normal(size=(size, size))


def multiply_matrices(x: FloatArray, y: FloatArray) -> FloatArray:
    """Return the matrix product ``x @ y``."""
    return x @ y


def slow_add(x: int, y: int, seconds: float) -> int:
    """Sleep ``seconds`` (blocking), then return ``x + y``: the Ray tutorial's slow ``add``."""
    time.sleep(seconds)
    return x + y


def halve_repeatedly(array: FloatArray, rounds: int) -> FloatArray:
    """Apply the chunked-array recipe's ``[item / 2 for item in array]`` ``rounds`` times.

    Pure Python: costs about 3 ms per round for 1e5 items on one core, holding the GIL throughout.
    Halving is exact, so the answer equals ``array / 2.0**rounds`` bit for bit.
    """
    values: list[float] = array.tolist()
    for _ in range(rounds):
        values = [item / 2 for item in values]
    return np.asarray(values, dtype=np.float64)
