"""Remote tracebacks name the file a function came from, also for ``__main__`` functions.

cloudpickle sends the functions of a script (``__main__``) by value and names their
file ``<dynamic-code>``; aiopar keeps the real name (aiopar/_codepickle.py), so the
traceback of a failed task shows the script's file, line and source text. The script
runs as a user runs it, in a subprocess.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent(
    """\
    import functools

    import anyio

    import aiopar


    def explode(x: int) -> int:
        raise ValueError(f"boom {x}")


    def outer() -> object:
        def inner(x: int) -> int:
            raise KeyError(f"inner {x}")

        return inner


    async def main() -> None:
        async with aiopar.Pool(workers=1) as pool:
            for func in (explode, functools.partial(explode), outer(), lambda x: 1 // 0):
                try:
                    await pool.submit(func, 3)
                except Exception:
                    pass
                else:
                    raise AssertionError("no error")
            await pool.submit(explode, 4)


    if __name__ == "__main__":
        anyio.run(main)
    """
)


@pytest.mark.timeout(60)
def test_a_remote_traceback_names_the_script_and_its_line(tmp_path: Path) -> None:
    script = tmp_path / "my_script.py"
    script.write_text(SCRIPT)
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert result.returncode != 0
    assert "ValueError: boom 4" in result.stderr, result.stderr
    assert "<dynamic-code>" not in result.stderr
    line = SCRIPT.splitlines().index('    raise ValueError(f"boom {x}")') + 1
    assert f'File "{script}", line {line}, in explode' in result.stderr, result.stderr
    assert 'raise ValueError(f"boom {x}")' in result.stderr  # the worker read the line


@pytest.mark.timeout(60)
def test_nested_functions_and_lambdas_keep_their_file_too() -> None:
    import pickle

    from aiopar import _codepickle

    def outer() -> object:
        def inner(x: int) -> int:
            return x

        return inner

    for func in (outer(), lambda x: x):
        copy = pickle.loads(_codepickle.dumps(func))
        assert copy.__code__.co_filename == __file__
        assert copy.__code__.co_firstlineno == func.__code__.co_firstlineno  # type: ignore[attr-defined]
        assert copy(5) == 5
