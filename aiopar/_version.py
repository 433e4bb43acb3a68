"""The version of the installed aiopar, read from the package metadata at import time."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__: str = version("aiopar")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"
