"""`lipstream bench edge-capacity`: its arguments; the run as JSON with a PNG beside it, or several runs plotted."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from benchmarks.capacity.plot import plot_runs
from benchmarks.capacity.report import summarise
from benchmarks.capacity.run import Options, run_capacity
from benchmarks.e2e.written import run_and_write
from benchmarks.kit.arguments import number

SESSIONS, SECONDS = 4, 20.0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("edge-capacity", help="the edge's CPU and memory per idle and per speaking session")
    parser.add_argument("--json", type=Path, metavar="OUT", help="write the results as JSON here (a PNG beside it)")
    parser.add_argument("--sessions", type=number(int, 1), default=SESSIONS, help=f"default {SESSIONS}")
    parser.add_argument("--seconds", type=number(float, 2.0), default=SECONDS, help=f"per phase (default {SECONDS:g})")
    parser.add_argument("--workers", type=number(int, 1), default=1, help="edge worker processes (default 1)")
    parser.add_argument("--edge-source", type=Path, metavar="DIR", help="run the edge from this checkout (PYTHONPATH)")
    parser.add_argument("--label", help="the run's name in plots (default: workers and source)")
    parser.add_argument("--compare", type=Path, nargs="+", metavar="JSON", help="plot these runs' JSON side by side")
    parser.add_argument("--plot", type=Path, metavar="PNG", help="with --compare: where the plot goes")
    parser.set_defaults(handler=_run)


def _compare(args: argparse.Namespace) -> int:
    if args.plot is None:
        print("error: --compare needs --plot", file=sys.stderr)
        return 2
    results = [json.loads(path.read_text(encoding="utf-8")) for path in args.compare]
    print(f"plot: {args.plot}" if plot_runs(results, args.plot) else "no plot: matplotlib is not installed")
    return 0


def _run(args: argparse.Namespace) -> int:
    if args.compare:
        return _compare(args)
    if args.json is None:
        print("error: --json is needed to run the bench", file=sys.stderr)
        return 2
    options = Options(args.sessions, args.seconds, args.workers, args.edge_source)
    label = args.label or f"{args.edge_source.name if args.edge_source else 'this'} x{args.workers}"
    load_before = os.getloadavg()[0]
    result = run_and_write(
        run_capacity(options),
        lambda measured: summarise(options, measured, label, load_before),
        args.json,
        lambda run, png: plot_runs([run], png),
    )
    if result is None:
        return 1
    cost = result["per_session"]
    print(
        f"{label}: per session idle {cost['cpu_pct']['idle']} %, speaking {cost['cpu_pct']['speaking']} % of a core, "
        f"PSS {cost['pss_mb']} MB; sessions per worker {result['sessions_per_worker'] or 'n/a'}"
    )
    return 0
