"""The leak check's process listing (``aiopar/_leaks.py``): with psutil, and from
``/proc`` alone where psutil is not installed (aiopar does not depend on it)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from aiopar import _leaks


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_children_are_found_with_and_without_psutil(monkeypatch: pytest.MonkeyPatch) -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        with_psutil = _leaks._children()
        monkeypatch.setitem(sys.modules, "psutil", None)  # import psutil: ImportError
        from_proc = _leaks._children()
    finally:
        child.kill()
        child.wait()
    assert child.pid in with_psutil
    assert child.pid in from_proc
    assert child.pid not in _leaks._children()  # reaped: gone from both listings
