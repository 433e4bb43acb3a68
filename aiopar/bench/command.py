"""The command ``python -m aiopar bench``: its options, the run, the printed table and files.

Runs in the main thread: starts the :class:`~aiopar.bench.runner.Bench`, runs each
workload chosen, judges and prints the rows, writes ``--json`` / ``--markdown``. Progress
lines go to stderr, the table to stdout.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from collections.abc import Sequence

from .._load import CpuWatch
from .cluster import installed as distributed_installed
from .report import CORE_ROWS, format_markdown, format_table, judge, machine, to_json
from .rows import Result, Workload
from .runner import Bench
from .sizes import FULL, QUICK
from .workloads import CLUSTER_WORKLOADS, EXTRA_WORKLOADS, WORKLOADS, catalog, runner_of

__all__ = ["main"]


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m aiopar bench",
        description="Measure aiopar against sequential code, raw asyncio run_in_executor and,"
        " when installed, joblib, Ray, Dask, mpire and aiomultiprocess; print one table.",
        epilog="Workloads: "
        + ", ".join(WORKLOADS)
        + "; with --only also "
        + ", ".join(EXTRA_WORKLOADS)
        + ". See docs/benchmarks.md.",
    )
    parser.add_argument(
        "--repeat",
        type=_positive,
        default=5,
        metavar="N",
        help="timed runs per row (default 5; py_tasks, short and noisy, 3 times as many)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small sizes, for tests and a first look; the bars, set for the full sizes,"
        " are not judged",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--markdown", metavar="PATH", help="also write the table as Markdown")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=(*WORKLOADS, *EXTRA_WORKLOADS),
        metavar="NAME",
        help=f"run only these workloads ({', '.join(EXTRA_WORKLOADS)}: only when named here)",
    )
    parser.add_argument(
        "--loop", choices=("asyncio", "uvloop"), default="asyncio", help="event loop to use"
    )
    parser.add_argument(
        "--peers",
        choices=("auto", "yes", "no"),
        default="auto",
        help="rows for the other libraries that are installed (joblib, Ray, Dask, mpire,"
        " aiomultiprocess): auto (the default) measures them at the full sizes and skips"
        " them with --quick, where starting each would take longer than the rows",
    )
    parser.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help=f"run the cluster workloads ({', '.join(CLUSTER_WORKLOADS)}) on the Dask"
        " scheduler at ADDRESS (tcp://host:8786); without it, naming them with --only"
        " starts a LocalCluster for the run. Needs distributed: pip install 'aiopar[dask]'",
    )
    return parser


def _names(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    """The workloads to run, in order; exits with a usage error for a cluster run that
    cannot happen."""
    if args.cluster is not None and not args.only:
        names = list(CLUSTER_WORKLOADS)
    else:
        names = [name for name in WORKLOADS if not args.only or name in args.only]
        names += [name for name in EXTRA_WORKLOADS if args.only and name in args.only]
    on_cluster = [name for name in names if name in CLUSTER_WORKLOADS]
    if args.cluster is not None and not on_cluster:
        parser.error(
            f"--cluster runs {' and '.join(CLUSTER_WORKLOADS)}: name one of them with --only,"
            " or leave --only out"
        )
    if on_cluster and not distributed_installed():
        parser.error(
            f"{' and '.join(on_cluster)} need Dask's distributed: pip install 'aiopar[dask]'"
        )
    return names


def _load(watch: CpuWatch) -> dict[str, float]:
    """Shares of all CPUs since ``watch`` was made: ``others`` (other processes, the
    hypervisor's steal not included) and ``steal``; zero where ``/proc`` is missing."""
    steal = watch.steal() or 0.0
    return {"others": max(0.0, (watch.others() or 0.0) - steal), "steal": steal}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print its table; return the exit code (1 if a core row failed).

    Args:
        argv: the options after ``bench`` (``None``: ``sys.argv[1:]``); see ``--help``.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    if args.loop == "uvloop" and importlib.util.find_spec("uvloop") is None:
        parser.error("--loop uvloop needs uvloop: pip install uvloop")
    sizes = QUICK if args.quick else FULL
    names = _names(parser, args)
    workloads = catalog(sizes)
    start = time.perf_counter()

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    peers = args.peers == "yes" or (args.peers == "auto" and not args.quick)
    bench = Bench(
        sizes, args.repeat, loop=args.loop, progress=progress, cluster=args.cluster, peers=peers
    )
    about = machine(bench.workers)
    scale = "quick" if args.quick else "full"
    heading = (
        f"aiopar bench, {scale} sizes, --repeat {args.repeat}, {args.loop} loop:"
        f" {about['workers']} workers on {about['cpus']} CPUs,"
        f" {about['memory_gib']:g} GiB, Python {about['python']},"
        f" numpy {about['numpy']}, aiopar {about['aiopar']}"
        f" (source {about['aiopar_source']}), {about['date']}"
    )
    print(heading, flush=True)
    results: list[tuple[Workload, list[Result]]] = []
    try:
        ready = bench.warm()
        progress(
            f"workers started in {ready:.2f} s: aiopar.Pool({bench.workers}) and"
            f" ProcessPoolExecutor({bench.workers}, forkserver)"
        )
        watch = CpuWatch()
        for name in names:
            progress(f"{name}: {workloads[name].description}")
            rows = runner_of(name)(bench)
            judge(workloads[name], rows, quick=args.quick)
            results.append((workloads[name], rows))
        load = _load(watch)
        cluster = bench.started_cluster
        about_cluster = (
            f"Dask cluster: {cluster.described}, {cluster.threads} worker threads"
            f" (distributed {cluster.version})."
            if cluster is not None
            else ""
        )
    finally:
        bench.close()
    seconds = time.perf_counter() - start
    footer = [
        *filter(None, [about_cluster]),
        f"Memory: {bench.memory.method}.",
        f"Other processes used {load['others']:.0%} of the CPUs during the run"
        f" (hypervisor steal {load['steal']:.0%})"
        + ("; timings are disturbed." if load["others"] + load["steal"] > 0.1 else "."),
        f"Finished in {seconds:.1f} s.",
    ]
    if args.quick:
        footer.insert(0, "Quick sizes: the bars hold for the full sizes and are not judged.")
    print(format_table(results))
    print("\n".join(footer), flush=True)
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as file:
            file.write(format_markdown(results, heading + ".") + "\n" + "\n".join(footer) + "\n")
    if args.json:
        options: dict[str, object] = {"quick": args.quick, "repeat": args.repeat, "loop": args.loop}
        if any(name in CLUSTER_WORKLOADS for name in names):
            options["cluster"] = args.cluster or "LocalCluster"

        data = to_json(
            results,
            machine=about,
            options={**options, "sizes": vars(sizes)},
            memory_method=bench.memory.method,
            seconds=seconds,
        )
        data["cpu_share"] = load
        with open(args.json, "w", encoding="utf-8") as file:
            json.dump(data, file, indent=2, ensure_ascii=False)
            file.write("\n")
    failed = [
        f"{w.name}/{r.contender}"
        for w, rows in results
        for r in rows
        if r.contender in CORE_ROWS and r.status != "ok"
    ]
    if failed:
        print(f"aiopar bench: these rows failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0
