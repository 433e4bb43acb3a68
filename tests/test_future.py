"""``JobFuture`` (``aiopar/_future.py``) behaves as a ``concurrent.futures.Future`` does:
same fields, blocking waits with and without timeouts, ``concurrent.futures.wait`` and
``as_completed``, ``asyncio.wrap_future``, and a task's ``ref.future`` is one."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import threading

import pytest

import aiopar
from aiopar._future import JobFuture
from tests.workers import double


def _later(seconds: float, action: object) -> threading.Timer:
    timer = threading.Timer(seconds, action)  # type: ignore[arg-type]
    timer.start()
    return timer


def test_same_fields_as_a_standard_future() -> None:
    assert set(vars(JobFuture())) == set(vars(cf.Future()))
    assert isinstance(JobFuture(), cf.Future)


@pytest.mark.timeout(10)
def test_result_blocks_until_set_from_another_thread() -> None:
    future = JobFuture()
    timer = _later(0.05, lambda: future.set_result(7))
    assert future.result(timeout=5) == 7
    timer.join()


@pytest.mark.timeout(10)
def test_exception_blocks_until_set_from_another_thread() -> None:
    future = JobFuture()
    error = ValueError("boom")
    timer = _later(0.05, lambda: future.set_exception(error))
    assert future.exception(timeout=5) is error
    with pytest.raises(ValueError, match="boom"):
        future.result()
    timer.join()


@pytest.mark.timeout(10)
def test_timeout_leaves_no_sleeper_and_a_later_result_still_arrives() -> None:
    future = JobFuture()
    with pytest.raises(TimeoutError):
        future.result(timeout=0.01)
    assert not future._condition._sleepers  # type: ignore[attr-defined]
    future.set_result("late")
    assert future.result(timeout=0) == "late"


@pytest.mark.timeout(10)
def test_several_blocked_threads_are_all_woken() -> None:
    future = JobFuture()
    got: list[object] = []
    threads = [threading.Thread(target=lambda: got.append(future.result(5))) for _ in range(4)]
    for thread in threads:
        thread.start()
    future.set_result("all")
    for thread in threads:
        thread.join(5)
    assert got == ["all"] * 4


@pytest.mark.timeout(10)
def test_cancel_wakes_a_blocked_waiter() -> None:
    future = JobFuture()
    timer = _later(0.05, future.cancel)
    with pytest.raises(cf.CancelledError):
        future.result(timeout=5)
    timer.join()


@pytest.mark.timeout(10)
def test_wait_and_as_completed() -> None:
    futures = [JobFuture() for _ in range(3)]
    for future in futures:
        future.set_running_or_notify_cancel()

    def finish_all() -> None:
        for i, future in enumerate(futures):
            future.set_result(i)

    timer = _later(0.05, finish_all)
    done, not_done = cf.wait(futures, timeout=5)
    assert done == set(futures) and not not_done
    assert sorted(f.result() for f in cf.as_completed(futures, timeout=5)) == [0, 1, 2]
    timer.join()


@pytest.mark.timeout(10)
def test_done_callbacks_run_once_each() -> None:
    future = JobFuture()
    seen: list[object] = []
    future.add_done_callback(lambda f: seen.append(f.result()))
    future.set_result(3)
    future.add_done_callback(lambda f: seen.append(-f.result()))  # already done: at once
    assert seen == [3, -3]
    with pytest.raises(cf.InvalidStateError):
        future.set_result(4)


@pytest.mark.asyncio
@pytest.mark.timeout(10)
async def test_wrap_future_on_asyncio() -> None:
    future = JobFuture()
    _later(0.02, lambda: future.set_result("wrapped")).join(0)
    assert await asyncio.wait_for(asyncio.wrap_future(future), 5) == "wrapped"


@pytest.mark.anyio
@pytest.mark.timeout(60)
async def test_a_tasks_future_is_a_job_future_and_blocks_right() -> None:
    async with aiopar.Pool(1) as pool:
        ref = pool.submit(double, 21)
        assert isinstance(ref.future, JobFuture)
        assert await ref == 42
        assert ref.future.result(timeout=0) == 42
