"""Event-loop lag: a ticker that sleeps 1 ms over and over on the loop, and its statistics.

The ticker runs as a task on the bench's event loop beside the work being timed (the
``loop_lag`` workload); how late each tick wakes is how long the loop was kept busy.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import numpy as np

__all__ = ["Ticker", "lag_stats"]


class Ticker:
    """Sleeps ``interval`` over and over on the event loop, noting how late it wakes."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.lags: list[float] = []
        self._due = time.perf_counter()

    async def run(self) -> None:
        """Tick until cancelled."""
        while True:
            self._due = time.perf_counter() + self.interval
            await asyncio.sleep(self.interval)
            self.lags.append(max(0.0, time.perf_counter() - self._due))

    def finish(self) -> None:
        """Count the tick still asleep if it is already overdue (the loop was blocked)."""
        late = time.perf_counter() - self._due
        if late > 0:
            self.lags.append(late)


def lag_stats(lags_s: Sequence[float]) -> dict[str, float]:
    """p50, p99 and max of the lags in milliseconds, and how many ticks there were."""
    ms = np.asarray(lags_s, dtype=np.float64) * 1e3
    if ms.size == 0:
        return {"p50": 0.0, "p99": 0.0, "max": 0.0, "ticks": 0.0}
    return {
        "p50": float(np.percentile(ms, 50)),
        "p99": float(np.percentile(ms, 99)),
        "max": float(ms.max()),
        "ticks": float(ms.size),
    }
