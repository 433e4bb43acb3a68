"""Starting workers from every kind of main program: it works, or one clear error.

With start methods forkserver and spawn, workers run the main module again. Each case
runs a program in a subprocess (a script written to ``tmp_path``) and checks that it
either prints the right result or fails with exactly one traceback, in the parent, that
says what to do; never a storm of worker tracebacks ending in WorkerCrashedError.
"""

from __future__ import annotations

import ast
import py_compile
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from aiopar._main_module import _guarded

pytestmark = pytest.mark.timeout(120)

GUARD = 'if __name__ == "__main__":'


def program(method: str = "forkserver") -> str:
    return textwrap.dedent(
        f"""\
        import anyio

        import aiopar


        def square(x):
            return x * x


        async def main():
            async with aiopar.Pool(workers=1, start_method={method!r}) as pool:
                print(await pool.amap(square, range(4)))
        """
    )


# Mentions the guard in a comment, and in a string, but has none.
UNGUARDED = (
    program()
    + '\n# Run me directly: there is no `if __name__ == "__main__":` here.\n'
    + 'NOTE = "__name__ and __main__"\n'
    + "anyio.run(main)\n"
)
GUARDED = program() + f"\n\n{GUARD}\n    anyio.run(main)\n"
RESULT = "[0, 1, 4, 9]"


def run(args: list[str], cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def assert_one_clear_error(done: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert done.returncode != 0, done.stdout
    assert done.stderr.count("Traceback") == 1, done.stderr
    assert "WorkerCrashedError" not in done.stderr, done.stderr
    assert "RuntimeError" in done.stderr, done.stderr
    for needle in needles:
        assert needle in done.stderr, done.stderr


def assert_works(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 0, done.stderr
    assert RESULT in done.stdout, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr


def test_a_script_whose_comment_mentions_the_guard_gets_one_error(tmp_path: Path) -> None:
    (tmp_path / "job.py").write_text(UNGUARDED)
    line = UNGUARDED.splitlines().index("anyio.run(main)") + 1
    done = run(["job.py"], tmp_path)
    assert_one_clear_error(done, GUARD, f"line {line}", "job.py")


def test_a_guarded_script_works_with_forkserver_and_spawn(tmp_path: Path) -> None:
    # The guard written the other way round and behind an else: parsed, not searched.
    source = program("spawn") + (
        '\n\nif "__main__" != __name__:\n    pass\nelse:\n    anyio.run(main)\n'
    )
    (tmp_path / "job.py").write_text(source)
    assert_works(run(["job.py"], tmp_path))
    (tmp_path / "job2.py").write_text(GUARDED)
    assert_works(run(["job2.py"], tmp_path))
    py_compile.compile(str(tmp_path / "job2.py"), cfile=str(tmp_path / "job3.pyc"))
    assert_works(run(["job3.pyc"], tmp_path))  # compiled: runs, its guard unread


def test_an_unguarded_script_with_spawn_gets_one_error(tmp_path: Path) -> None:
    source = program("spawn") + "\n# __name__, __main__\nanyio.run(main)\n"
    (tmp_path / "job.py").write_text(source)
    assert_one_clear_error(run(["job.py"], tmp_path), GUARD)


def test_a_module_run_with_dash_m_is_checked_too(tmp_path: Path) -> None:
    (tmp_path / "jobmod.py").write_text(UNGUARDED)
    assert_one_clear_error(run(["-m", "jobmod"], tmp_path), GUARD, "jobmod.py")
    (tmp_path / "jobmod2.py").write_text(GUARDED)
    assert_works(run(["-m", "jobmod2"], tmp_path))


def test_code_from_standard_input_gets_one_error_that_says_to_use_a_file(
    tmp_path: Path,
) -> None:
    for args in (["-"], []):
        done = run(args, tmp_path, stdin=GUARDED)
        assert_one_clear_error(done, "standard input", "python file.py")


# Code of __main__ that workers do not import: a class of __main__ among the arguments
# and results (one with a big array, sent through shared memory) must go by value.
INTERACTIVE = textwrap.dedent(
    """\
    import dataclasses

    import anyio
    import numpy as np

    import aiopar


    @dataclasses.dataclass
    class Point:
        x: int


    def square(x):
        return x * x


    def moved(point, array):
        return Point(point.x + int(array.sum()))


    async def main():
        async with aiopar.Pool(workers=1) as pool:
            print(await pool.amap(square, range(4)))
            print(await pool.submit(moved, Point(1), np.ones(300_000)))


    anyio.run(main)
    """
)
INTERACTIVE_RESULT = "Point(x=300001)"


def assert_interactive_works(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 0, done.stderr
    assert RESULT in done.stdout and INTERACTIVE_RESULT in done.stdout, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr


def test_dash_c_and_a_repl_work_without_a_guard(tmp_path: Path) -> None:
    assert_interactive_works(run(["-c", INTERACTIVE], tmp_path))
    # An interactive session fed from a pipe: the functions go by value (cloudpickle).
    assert_interactive_works(run(["-i", "-q"], tmp_path, stdin=INTERACTIVE + "\n"))


NOTEBOOK = textwrap.dedent(
    """\
    import sys

    main_module = sys.modules["__main__"]
    FAKE_FILE
    cell = CELL
    # A notebook runs each cell as code of its own, in the namespace of __main__.
    exec(compile(cell, "<ipython-input-1>", "exec"), main_module.__dict__)
    """
)


@pytest.mark.parametrize("fake", [True, False], ids=["fake-file", "no-file"])
def test_a_notebook_works_or_gets_one_error(tmp_path: Path, fake: bool) -> None:
    cell = INTERACTIVE
    (tmp_path / "analysis.ipynb").write_text('{"cells": [], "nbformat": 4}')
    set_file = (
        f"main_module.__file__ = {str(tmp_path / 'analysis.ipynb')!r}"
        if fake
        else "del main_module.__file__"
    )
    source = NOTEBOOK.replace("FAKE_FILE", set_file).replace("CELL", repr(cell))
    (tmp_path / "kernel.py").write_text(source)
    done = run(["kernel.py"], tmp_path)
    if fake:
        assert_one_clear_error(done, "notebook", "analysis.ipynb", "del __file__")
    else:
        assert_interactive_works(done)


def test_ipython_works_or_gets_one_error(tmp_path: Path) -> None:
    pytest.importorskip("IPython")
    (tmp_path / "job.py").write_text(UNGUARDED)
    ipython = ["-m", "IPython", "--no-banner", "--colors=NoColor"]
    done = run([*ipython, "job.py"], tmp_path)
    assert done.stdout.count("Traceback") + done.stderr.count("Traceback") == 1, done
    assert GUARD in done.stdout + done.stderr
    assert "WorkerCrashedError" not in done.stdout + done.stderr
    assert_interactive_works(run([*ipython, "-c", INTERACTIVE], tmp_path))


@pytest.mark.parametrize(
    ("source", "guarded"),
    [
        (f"{GUARD}\n    run()\n", True),
        ("if __name__ != '__main__':\n    pass\nelse:\n    run()\n", True),
        ("if __name__ == '__main__' and len(sys.argv) > 1:\n    run()\n", True),
        ("if __name__ in ('__main__', 'x'):\n    run()\n", True),
        ("if not __name__ == '__main__':\n    pass\nelse:\n    run()\n", True),
        (f"{GUARD}\n    try:\n        pass\n    finally:\n        run()\n", True),
        ("if current_process().name == 'MainProcess':\n    run()\n", True),
        ("# if __name__ == '__main__':\nrun()\n", False),
        ("if __name__ != '__main__':\n    run()\n", False),
        ("if len(sys.argv) > 1:\n    run()\n", False),
        ("with open('x'):\n    run()\n", False),
        ("try:\n    run()\nexcept Exception:\n    pass\n", False),
        (f"{GUARD} pass\nfor i in range(2):\n    run()\n", False),
    ],
)
def test_the_guard_is_read_from_the_syntax(source: str, guarded: bool) -> None:
    line = next(number for number, text in enumerate(source.splitlines(), 1) if "run()" in text)
    assert _guarded(ast.parse(source).body, line) is guarded
