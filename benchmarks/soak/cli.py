"""`lipstream bench soak`: its arguments; the run written as JSON, with a PNG beside it when matplotlib is there."""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.e2e.written import run_and_write
from benchmarks.kit.arguments import number
from benchmarks.soak.plot import plot_soak
from benchmarks.soak.report import summarise
from benchmarks.soak.run import Options, run_soak

FULL_CYCLES, QUICK_CYCLES = 1000, 50
FULL_WARMUP, QUICK_WARMUP = 20, 4
CONCURRENCY = 3  # under the edge's max_sessions (6) and max_connecting (4)
SAMPLE_EVERY = 25
CONNECT_TIMEOUT_S = 3.0
UTTERANCE_S = 1.0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("soak", help="thousands of sessions opened and ended: does the edge give back?")
    parser.add_argument("--json", type=Path, required=True, metavar="OUT", help="write the results as JSON here")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_CYCLES} cycles after a short warm-up")
    parser.add_argument(
        "--cycles",
        type=number(int, 1),
        metavar="N",
        help=f"session cycles measured (default {FULL_CYCLES}; quick {QUICK_CYCLES})",
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    cycles = args.cycles or (QUICK_CYCLES if args.quick else FULL_CYCLES)
    options = Options(
        cycles=cycles,
        warmup=QUICK_WARMUP if args.quick else FULL_WARMUP,
        concurrency=CONCURRENCY,
        sample_every=max(1, min(SAMPLE_EVERY, cycles // 4)),
        connect_timeout_s=CONNECT_TIMEOUT_S,
        utterance_s=UTTERANCE_S,
        quick=args.quick,
    )
    result = run_and_write(run_soak(options), summarise, args.json, plot_soak)
    if result is None:
        return 1
    delta, trend = result["delta"], result["memory_trend"]
    print(
        f"{result['cycles_done']} cycles ({result['cycles_failed']} failed) in {result['seconds']:.0f} s: "
        f"edge RSS {result['baseline']['rss_mb']} -> {result['final']['rss_mb']} MB ({delta['rss_mb']:+} MB, "
        f"{trend['verdict']}), threads {delta['threads']:+}, fds {delta['fds']:+}, sockets {delta['sockets']}"
    )
    return 0
