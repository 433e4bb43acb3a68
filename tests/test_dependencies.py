"""``send_when_done`` (``aiopar/_dependencies.py``): a job waiting for its dependencies is
submitted exactly once, by the thread that finishes the last one, and never when one
fails or is cancelled (it fails or is cancelled at once instead)."""

from __future__ import annotations

import concurrent.futures as cf
import threading
from typing import Any

import pytest

from aiopar._dependencies import send_when_done
from aiopar._future import JobFuture
from aiopar._job import Job


class _Runner:
    """Records the jobs submitted, and the thread each came from."""

    def __init__(self) -> None:
        self.submitted: list[tuple[Job, str]] = []
        self.lock = threading.Lock()

    def submit(self, job: Job) -> None:
        with self.lock:
            self.submitted.append((job, threading.current_thread().name))


def _job() -> Job:
    return Job(b"", "call", None, "task t#1")


def _resolved(futures: list[cf.Future[Any]]) -> Any:
    return lambda first, second: (tuple(f.result() for f in futures), {})


def test_all_finished_already_is_sent_at_once() -> None:
    futures: list[cf.Future[Any]] = [JobFuture() for _ in range(3)]
    for i, future in enumerate(futures):
        future.set_result(i)
    runner, job = _Runner(), _job()
    send_when_done(job, runner, futures, _resolved(futures), None, None)  # type: ignore[arg-type]
    assert [sent for sent, _ in runner.submitted] == [job]
    assert job.payload == ((0, 1, 2), {}) and job.plain


@pytest.mark.timeout(30)
def test_sent_once_by_the_thread_that_finishes_the_last_one() -> None:
    for _ in range(50):
        futures: list[cf.Future[Any]] = [JobFuture() for _ in range(8)]
        runner, job = _Runner(), _job()
        send_when_done(job, runner, futures, _resolved(futures), None, None)  # type: ignore[arg-type]
        assert not runner.submitted
        start = threading.Barrier(len(futures))

        def finish(future: cf.Future[Any], value: int, start: threading.Barrier) -> None:
            start.wait()
            future.set_result(value)

        threads = [
            threading.Thread(target=finish, args=(f, i, start), name=f"settler-{i}")
            for i, f in enumerate(futures)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(runner.submitted) == 1
        assert runner.submitted[0][1].startswith("settler-")
        assert job.payload == (tuple(range(8)), {})


@pytest.mark.timeout(30)
def test_a_failure_fails_at_once_and_the_job_is_never_sent() -> None:
    for _ in range(50):
        futures: list[cf.Future[Any]] = [JobFuture() for _ in range(6)]
        runner, job = _Runner(), _job()
        send_when_done(job, runner, futures, _resolved(futures), None, None)  # type: ignore[arg-type]
        futures[0].set_exception(ValueError("first"))
        assert isinstance(job.future.exception(timeout=0), ValueError)  # others still pending
        start = threading.Barrier(len(futures) - 1)

        def finish(future: cf.Future[Any], index: int, start: threading.Barrier) -> None:
            start.wait()
            if index % 2:
                future.set_exception(KeyError(index))
            else:
                future.set_result(index)

        threads = [
            threading.Thread(target=finish, args=(f, i, start)) for i, f in enumerate(futures[1:])
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not runner.submitted
        assert str(job.future.exception(timeout=0)) == "first"


def test_a_cancelled_dependency_cancels_the_job() -> None:
    futures: list[cf.Future[Any]] = [JobFuture() for _ in range(2)]
    runner, job = _Runner(), _job()
    send_when_done(job, runner, futures, _resolved(futures), None, None)  # type: ignore[arg-type]
    futures[1].cancel()
    futures[0].set_result(1)
    assert job.future.cancelled() and not runner.submitted


def test_a_failed_dependency_finished_before_submit_fails_the_job() -> None:
    done: cf.Future[Any] = JobFuture()
    done.set_exception(RuntimeError("earlier"))
    pending: cf.Future[Any] = JobFuture()
    runner, job = _Runner(), _job()
    send_when_done(job, runner, [pending, done], _resolved([pending, done]), None, None)  # type: ignore[arg-type]
    assert str(job.future.exception(timeout=0)) == "earlier"
    pending.set_result(1)
    assert not runner.submitted


def test_a_resolve_that_raises_fails_the_job_instead() -> None:
    future: cf.Future[Any] = JobFuture()
    runner, job = _Runner(), _job()

    def resolve(first: Any, second: Any) -> Any:
        raise TypeError("cannot rebuild")

    send_when_done(job, runner, [future], resolve, None, None)  # type: ignore[arg-type]
    future.set_result(1)
    assert isinstance(job.future.exception(timeout=0), TypeError) and not runner.submitted


def test_a_job_cancelled_while_waiting_is_not_sent() -> None:
    future: cf.Future[Any] = JobFuture()
    runner, job = _Runner(), _job()
    send_when_done(job, runner, [future], _resolved([future]), None, None)  # type: ignore[arg-type]
    assert job.future.cancel()
    future.set_result(1)
    assert not runner.submitted
