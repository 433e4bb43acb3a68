"""Command line: ``python -m aiopar {demo,bench} [options]``, ``--help``, ``--version``.

``demo`` runs small versions of two classic parallel-Python experiments (a Ray-style task
graph and a chunked numpy array) sequentially and with aiopar (see :mod:`aiopar.demo`);
``bench`` runs the benchmarks in :mod:`aiopar.bench`. The options after a command are the
command's own (``python -m aiopar demo --help`` lists them). Each command's module is
imported only when that command runs, so ``python -m aiopar --help`` starts fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from ._version import __version__

__all__ = ["main"]

COMMANDS = {
    "demo": "run a Ray-style task graph, a chunked numpy array and more, sequentially and"
    " with aiopar; print a table of timings",
    "bench": "measure aiopar against sequential code, run_in_executor and other libraries",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m aiopar",
        description="aiopar: run CPU-bound work on all cores from asyncio, uvloop and trio.",
        epilog="`python -m aiopar COMMAND --help` lists a command's own options.",
    )
    parser.add_argument("--version", action="version", version=f"aiopar {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", dest="command")
    for name, text in COMMANDS.items():
        # The command's own parser reads its options: this one only names it.
        commands.add_parser(name, help=text, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``), run the command, return the exit code."""
    parser = _parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] not in COMMANDS:
        parser.parse_args(argv)  # --help, --version, or a usage error: each exits
        parser.error("a command is required: " + " or ".join(COMMANDS))
    command, options = argv[0], argv[1:]
    if command == "demo":
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
