"""aiopar works with its declared dependencies alone (``pip install -e .``, no extras).

The test environment holds every extra, so a module that aiopar imports without
declaring it (``sniffio`` once was) would pass every other test and fail on a newcomer's
first command. Here a ``sitecustomize`` module, put on ``PYTHONPATH`` of a subprocess
(and so of its workers too), refuses every import that an aiopar module makes of a
top-level module that is neither in the standard library nor in a distribution listed
in ``[project] dependencies`` of pyproject.toml. The subprocess imports every module of
the package (demo and bench included) and runs a map on a real pool. ``.ci/run`` also
installs the package into a bare virtual environment and runs the README's first
command there.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

BLOCKER = '''
"""Refuse imports, made by aiopar's own modules, of modules aiopar does not declare.

Wraps ``__import__``, which every import statement calls even when the module is loaded
already (``sniffio``, say, imported by anyio when it happens to be installed).
"""
import builtins
import importlib.metadata
import json
import os
import re
import sys

_DECLARED = set(json.loads(os.environ["AIOPAR_TEST_DECLARED"]))
_PROVIDERS = importlib.metadata.packages_distributions()
_import = builtins.__import__


def _normal(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def _checked_import(name, globals=None, locals=None, fromlist=(), level=0):
    importer = (globals or {}).get("__name__") or ""
    top = name.partition(".")[0]
    if (
        level == 0
        and (importer == "aiopar" or importer.startswith("aiopar."))
        and top not in sys.stdlib_module_names
        and top != "aiopar"
        and not {_normal(d) for d in _PROVIDERS.get(top, [])} & _DECLARED
    ):
        raise ImportError(
            f"{importer} imports {top!r}, which is not a declared dependency of aiopar",
            name=top,
        )
    return _import(name, globals, locals, fromlist, level)


builtins.__import__ = _checked_import
'''

SCRIPT = textwrap.dedent(
    """
    import importlib
    import pkgutil

    import anyio

    import aiopar

    for info in pkgutil.iter_modules(aiopar.__path__):
        if info.name == "pytest_plugin":
            continue  # loaded by pytest alone (its pytest11 entry point), so pytest is there
        importlib.import_module(f"aiopar.{info.name}")


    async def main() -> None:
        async with aiopar.Pool(workers=1) as pool:
            assert await pool.amap(abs, [-1, -2, -3]) == [1, 2, 3]
            assert await pool.submit(abs, -4) == 4


    if __name__ == "__main__":
        anyio.run(main)
        print("imports ok")
    """
)


def declared_distributions() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = []
    for requirement in project["dependencies"]:
        match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
        assert match, requirement
        names.append(re.sub(r"[-_.]+", "-", match.group()).lower())
    return names


def run_with_declared_only(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "sitecustomize.py").write_text(BLOCKER)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp_path), env.get("PYTHONPATH")]))
    env["AIOPAR_TEST_DECLARED"] = repr(declared_distributions()).replace("'", '"')
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )


@pytest.mark.timeout(120)
def test_every_module_imports_and_runs_with_declared_dependencies_only(
    tmp_path: Path,
) -> None:
    script = tmp_path / "use_every_module.py"
    script.write_text(SCRIPT)
    result = run_with_declared_only(tmp_path, str(script))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "imports ok"


@pytest.mark.timeout(60)
def test_the_blocker_refuses_an_undeclared_import(tmp_path: Path) -> None:
    # The check above must be able to fail: an aiopar module importing an installed but
    # undeclared module (pytest is installed here, and not a dependency) is refused.
    code = "exec('import pytest', {'__name__': 'aiopar.probe'})"
    result = run_with_declared_only(tmp_path, "-c", code)
    assert result.returncode != 0
    assert "aiopar.probe imports 'pytest', which is not a declared dependency" in result.stderr


def test_readme_opens_with_a_pitch_the_set_up_and_the_two_commands_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", readme, re.DOTALL)
    first_lines = readme.splitlines()[:3]
    assert first_lines[0] == "# aiopar" and first_lines[1] == ""
    assert first_lines[2] and not first_lines[2].startswith(("`", "#", "-"))  # the pitch
    set_up, commands = blocks[0].splitlines(), blocks[1].splitlines()
    assert set_up[0].startswith("git clone ") and set_up[0].endswith("&& cd aiopar")
    assert set_up[1] == "python3 -m venv .venv && . .venv/bin/activate"
    assert commands == [
        "pip install -e . && python -m aiopar demo",
        "pip install -e '.[test]' && python -m pytest",
    ]
    assert readme.index(blocks[1]) < readme.index("```python")  # before any code sample
    ci = (ROOT / ".ci" / "run").read_text()
    # .ci/run takes both commands from the README itself, the first into a bare venv
    assert "grep -m1 -E '^pip install -e \\. && ' README.md" in ci
    assert "grep -m1 \"^pip install -e '.\\[test\\]'\" README.md" in ci
    assert '-m venv "${bare}/venv"' in ci
