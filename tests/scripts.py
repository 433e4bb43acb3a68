"""Running a test's script in a process of its own, and cleaning up after it.

A script runs in its own session (``start_new_session=True``), so the test can signal its
whole process group, and so that whatever the script leaves behind (workers, their
children) is SIGKILLed when the test is done, whether it passed or not.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

__all__ = ["REPO", "kill_group", "run_script", "script_process"]

REPO = Path(__file__).resolve().parent.parent


def _write(tmp_path: Path, name: str, body: str) -> Path:
    """``body`` as a script file that imports this checkout's aiopar and tests."""
    script = tmp_path / name
    script.write_text(f"import sys\nsys.path.insert(0, {str(REPO)!r})\n{body}")
    return script


def kill_group(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """SIGKILL what is left of the script's process group; return what it printed."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if proc.stdout is None or proc.stdout.closed:
        proc.wait()
        return "", ""
    return proc.communicate(timeout=30)


@contextlib.contextmanager
def script_process(
    tmp_path: Path, name: str, body: str, *, cwd: Path | None = None
) -> Iterator[subprocess.Popen[str]]:
    """Start ``body`` as a script in its own session and yield its process.

    On the way out, whatever is left of its process group is SIGKILLed and its pipes
    are drained and closed.
    """
    script = _write(tmp_path, name, body)
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        cwd=cwd,
    )
    try:
        yield proc
    finally:
        kill_group(proc)


def run_script(
    tmp_path: Path, body: str, timeout: float = 60.0, *, name: str = "script.py"
) -> subprocess.CompletedProcess[str]:
    """Run ``body`` as a script in its own session (working directory ``tmp_path``) to
    its end; SIGKILL its process group after ``timeout`` seconds (the caller then sees
    return code -9) and in any case once it has ended (whatever it left behind)."""
    with script_process(tmp_path, name, body, cwd=tmp_path) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            out, err = kill_group(proc)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def run_bench(*args: str, timeout: float = 170) -> subprocess.CompletedProcess[str]:
    """``python -m aiopar bench ARGS`` from the checkout, to its end (at most ``timeout``
    seconds); what it printed, and its exit status."""
    return subprocess.run(
        [sys.executable, "-m", "aiopar", "bench", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
