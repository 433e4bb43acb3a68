"""Pickling a job's arguments with the places of other jobs' results marked.

A job for a runner that passes results between its jobs (``_runner.Linking``: the
cluster) holds ``_job.Link`` objects where other jobs' results go. :func:`linked`
pickles its payload in the caller's thread with each Link replaced by the index of its
job, and returns those jobs: their Dask futures become the task's further arguments,
and ``_cluster_worker.run`` puts the results in their places in the worker.
"""

from __future__ import annotations

import io
import pickle
import re
import uuid
from typing import Any

from ._cluster_worker import Linked
from ._envelopes import _names_main
from ._job import Job, Link

__all__ = ["linked", "task_key"]


def task_key(job: Job) -> str:
    """A unique Dask key that still reads as the job's function on the dashboard."""
    match = re.search(r"\(([\w.<>]+)\)$|^task ([\w.<>]+)#", job.label)
    name = next((group for group in match.groups() if group), "job") if match else "job"
    return f"{re.sub(r'[^A-Za-z0-9_.]', '_', name)}-aiopar-{uuid.uuid4().hex}"


class _LinkPickler(pickle.Pickler):
    """Pickles a payload with each ``Link`` replaced by the index of its job."""

    def __init__(self, file: Any, protocol: int) -> None:
        super().__init__(file, protocol)
        self.jobs: dict[int, tuple[int, Job]] = {}

    def persistent_id(self, obj: Any) -> Any:
        if type(obj) is Link:
            entry = self.jobs.setdefault(id(obj.job), (len(self.jobs), obj.job))
            return entry[0]
        return None


def linked(payload: object) -> tuple[Linked, list[Job]]:
    """``payload`` pickled with its Links marked, and the jobs they stand for, in order."""
    buffer = io.BytesIO()
    pickler = _LinkPickler(buffer, pickle.HIGHEST_PROTOCOL)
    try:
        pickler.dump(payload)
        data = buffer.getvalue()
        if _names_main(data):  # functions of a script or notebook go by value
            raise pickle.PicklingError("by value")
    except Exception:
        import cloudpickle

        class _CloudLinkPickler(cloudpickle.Pickler):  # type: ignore[misc]
            persistent_id = _LinkPickler.persistent_id

        buffer = io.BytesIO()
        pickler = _CloudLinkPickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
        pickler.jobs = {}
        pickler.dump(payload)
        data = buffer.getvalue()
    jobs = [job for _, job in sorted(pickler.jobs.values(), key=lambda entry: entry[0])]
    return Linked(data), jobs
