"""Command line: ``python -m aiopar {demo,bench} [options]``.

``demo`` runs the seed texts' experiments (see :mod:`aiopar.demo`); ``bench`` runs the
benchmarks in :mod:`aiopar.bench`. Each command's module is imported only when that
command runs, so ``python -m aiopar --help`` starts fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["main"]

COMMANDS = {
    "demo": "run the seed texts' experiments sequentially and with aiopar, print a table",
    "bench": "run the aiopar benchmarks",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m aiopar",
        description="aiopar: run CPU-bound work on all cores from asyncio, uvloop and trio.",
        epilog="Commands: "
        + "; ".join(f"{name}: {text}" for name, text in COMMANDS.items())
        + ". See `python -m aiopar COMMAND --help` for a command's options.",
    )
    parser.add_argument("command", choices=tuple(COMMANDS), help="what to run")
    parser.add_argument(
        "options", nargs=argparse.REMAINDER, help="options for the command (see its --help)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``), run the command, return the exit code."""
    parser = _parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:
        parser.error("a command is required: " + " or ".join(COMMANDS))
    args = parser.parse_args(argv)
    options: list[str] = args.options
    if args.command == "demo":
        from aiopar import demo

        return demo.main(options)
    try:
        bench = importlib.import_module("aiopar.bench")
    except ModuleNotFoundError as exc:
        if exc.name != "aiopar.bench":
            raise  # aiopar.bench exists but needs something missing: show the real error
        print(
            f"{parser.prog} bench: the benchmarks are not available in this version of"
            " aiopar (there is no module aiopar.bench)",
            file=sys.stderr,
        )
        return 2
    result: int | None = bench.main(options)
    return result or 0


if __name__ == "__main__":
    sys.exit(main())
