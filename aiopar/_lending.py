"""Segment lending: a job whose function returned a big array last time is lent an
arena segment of that size, so its worker writes the result into memory that is
already mapped and faulted in, instead of a new segment.

Runs in the dispatcher thread (``_borrows`` also in the executor's manager thread,
reading). The arena itself is ``_arena.Arena``; the segment travels to the worker as a
``_segments.Loan`` (see ``_feeding.Feeding._launch``).
"""

from __future__ import annotations

from . import _shm
from ._dispatch_state import DispatchState
from ._job import Job

__all__ = ["Lending"]

# How many functions' last result sizes are remembered, to lend each job a segment.
_RESULT_SIZES_KEPT = 256


class Lending(DispatchState):
    """Remembering result sizes per function, and whether a job borrows a segment."""

    def _borrows(self, job: Job) -> bool:
        """Whether launching ``job`` lends it an arena segment for its result."""
        return (
            self.arena is not None
            and job.destination is None
            and job.func_blob in self._result_sizes
        )

    def _note_result_size(self, job: Job) -> None:
        # The result went into a new segment, or into the lent one.
        size = _shm.held_size(job.result_segment) if job.result_segment else None
        if size is None and job.loan is not None:
            size = _shm.held_size(job.loan.name)
        sizes = self._result_sizes
        if size is not None:
            sizes.pop(job.func_blob, None)
            sizes[job.func_blob] = size
            if len(sizes) > _RESULT_SIZES_KEPT:
                del sizes[next(iter(sizes))]
        else:  # no big array in the result (or already dropped by the caller)
            sizes.pop(job.func_blob, None)
