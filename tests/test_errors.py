"""Exceptions from workers, worker crashes, and the exception tree."""

from __future__ import annotations

import pickle
from concurrent.futures.process import BrokenProcessPool

import pytest

import aiopar
from aiopar.errors import describe_exit
from tests import workers


@pytest.mark.asyncio
async def test_task_exception_keeps_type_message_and_remote_traceback() -> None:
    with pytest.raises(ValueError, match="bad item 3") as info:
        await aiopar.amap(workers.fail_on, range(10), chunksize=2)
    cause = info.value.__cause__
    assert cause is not None
    assert "in fail_on" in str(cause)  # the worker's traceback names the function
    with pytest.raises(ValueError, match="bad item 'z'"):
        await aiopar.submit(workers.fail, "z")


@pytest.mark.asyncio
async def test_exception_that_cannot_be_rebuilt_arrives_as_remote_error() -> None:
    with pytest.raises(aiopar.RemoteError) as info:
        await aiopar.submit(workers.raise_needs_two)
    error = info.value
    assert error.type_name == "tests.workers.NeedsTwoArgs"
    assert "code 7: disk on fire" in error.message
    assert "raise_needs_two" in error.remote_traceback
    assert "Worker traceback" in str(error)


@pytest.mark.asyncio
async def test_exception_that_cannot_be_pickled_arrives_as_remote_error() -> None:
    with pytest.raises(aiopar.RemoteError, match="Unpicklable: cannot travel"):
        await aiopar.amap(workers.raise_unpicklable, [1])


@pytest.mark.asyncio
async def test_results_plain_pickle_refuses_travel_by_cloudpickle() -> None:
    [func] = await aiopar.amap(workers.return_lambda, [0])
    assert func(1) == 2


@pytest.mark.asyncio
async def test_unpicklable_function_is_refused_before_work_starts() -> None:
    import threading

    lock = threading.Lock()

    def holds_lock(x: int) -> int:
        with lock:
            return x

    with pytest.raises(TypeError, match=r"func=.*holds_lock.*cannot be pickled"):
        await aiopar.amap(holds_lock, [1])
    with pytest.raises(TypeError, match="cannot be pickled"):
        aiopar.submit(holds_lock, 1)


@pytest.mark.asyncio
async def test_crash_fails_only_the_running_task_and_the_pool_recovers() -> None:
    async with aiopar.Pool(workers=2) as pool:
        crashing = pool.submit(workers.die)
        others = [pool.submit(workers.sleep_then, i, 0.05) for i in range(8)]
        with pytest.raises(aiopar.WorkerCrashedError) as info:
            await crashing
        assert await aiopar.gather(*others) == list(range(8))
        assert await pool.amap(workers.square, range(5)) == [0, 1, 4, 9, 16]
    error = info.value
    assert isinstance(error, BrokenProcessPool)
    assert error.exitcode == 13
    assert "task die" in str(error) and "exited with code 13" in str(error)


@pytest.mark.asyncio
async def test_crash_in_a_chunk_names_the_chunk_and_signal() -> None:
    async with aiopar.Pool(workers=2) as pool:
        expected = r"SIGKILL while running chunk \d+ of amap\(die_on\)"
        with pytest.raises(aiopar.WorkerCrashedError, match=expected):
            await pool.amap(workers.die_on, range(8), chunksize=1)
        assert await pool.amap(workers.die_on, [1, 2]) == [1, 2]


@pytest.mark.asyncio
async def test_retries_run_a_crashed_task_again() -> None:
    async with aiopar.Pool(workers=1, retries=2) as pool:
        with pytest.raises(aiopar.WorkerCrashedError):
            await pool.submit(workers.die)  # dies every time: fails after 3 runs
        assert await pool.submit(workers.square, 4) == 16


def test_errors_pickle_and_describe_exits() -> None:
    crash = aiopar.WorkerCrashedError("task x", 123, -9)
    again = pickle.loads(pickle.dumps(crash))
    assert (again.task, again.pid, again.exitcode) == ("task x", 123, -9)
    assert str(again) == str(crash)
    remote = aiopar.RemoteError("m.E", "msg", "tb")
    assert str(pickle.loads(pickle.dumps(remote))) == str(remote)
    assert issubclass(aiopar.WorkerCrashedError, aiopar.AioparError)
    assert issubclass(aiopar.RemoteError, aiopar.AioparError)
    assert describe_exit(-9) == "was killed by SIGKILL"
    assert describe_exit(3) == "exited with code 3"
    assert describe_exit(None) == "ended for an unknown reason"


def test_script_without_main_guard_gets_one_clear_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    script = tmp_path / "noguard.py"
    script.write_text(
        "import anyio, aiopar\n"
        "def square(x):\n    return x * x\n"
        "print(anyio.run(aiopar.amap, square, [1, 2]))\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert 'if __name__ == "__main__":' in done.stderr
    assert done.stderr.count("Traceback") == 1
    guarded = tmp_path / "guarded.py"
    guarded.write_text(
        "import anyio, aiopar\n"
        "def square(x):\n    return x * x\n"
        'if __name__ == "__main__":\n    print(anyio.run(aiopar.amap, square, [1, 2]))\n'
    )
    done = subprocess.run(
        [sys.executable, str(guarded)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[1, 4]"


@pytest.mark.asyncio
async def test_exception_class_sent_by_value_comes_back_as_itself() -> None:
    class LocalError(Exception):  # not importable: travels by value, like __main__ code
        pass

    def raise_local(x: int) -> int:
        raise LocalError(f"local {x}")

    with pytest.raises(LocalError, match="local 4") as info:
        await aiopar.submit(raise_local, 4)
    assert type(info.value) is LocalError
    assert "raise_local" in str(info.value.__cause__)
