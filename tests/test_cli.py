"""The command line's own surface (aiopar/__main__.py): ``--help``, ``--version``.

Run as a user runs it, ``python -m aiopar ...`` in a subprocess. The commands' tables
are tested in test_demo.py and test_bench.py.
"""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import pytest

import aiopar

ROOT = Path(__file__).resolve().parent.parent


def run_aiopar(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aiopar", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )


def test_version_attribute_is_the_installed_distributions() -> None:
    assert aiopar.__version__ == importlib.metadata.version("aiopar")
    assert "__version__" in aiopar.__all__


@pytest.mark.timeout(60)
def test_version_option_prints_the_version() -> None:
    result = run_aiopar("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"aiopar {aiopar.__version__}"


@pytest.mark.timeout(60)
def test_help_lists_each_command_with_a_line_and_no_stray_positional() -> None:
    result = run_aiopar("--help")
    assert result.returncode == 0, result.stderr
    usage = result.stdout.splitlines()[0]
    assert usage == "usage: python -m aiopar [-h] [--version] COMMAND ..."
    for command in ("demo", "bench"):
        assert re.search(rf"^\s+{command}\s+\S", result.stdout, re.MULTILINE), result.stdout
    assert "options" not in usage and "REMAINDER" not in result.stdout
    assert "--version" in result.stdout


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("command", "option"), [("demo", "--quick"), ("bench", "--repeat"), ("bench", "--only")]
)
def test_a_commands_help_is_its_own(command: str, option: str) -> None:
    result = run_aiopar(command, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: python -m aiopar {command} ")
    assert option in result.stdout


@pytest.mark.timeout(60)
def test_an_option_before_the_command_is_refused_with_usage() -> None:
    result = run_aiopar("--quick", "demo")
    assert result.returncode == 2
    assert "usage: python -m aiopar" in result.stderr
    assert "--quick" in result.stderr
