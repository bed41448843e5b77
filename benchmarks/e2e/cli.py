"""`lipstream bench e2e`: its arguments, and the run written as JSON with a line per level on stdout."""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.e2e.report import summarise
from benchmarks.e2e.run import Options, run_bench
from benchmarks.e2e.written import run_and_write
from benchmarks.kit.arguments import number

FULL_SECONDS, QUICK_SECONDS = 20.0, 4.0
FULL_MAX_SESSIONS, QUICK_MAX_SESSIONS = 12, 2
MIN_SECONDS = 2.0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("e2e", help="capacity, latency and A/V sync at real WebRTC clients")
    parser.add_argument("--json", type=Path, required=True, metavar="OUT", help="write the results as JSON here")
    parser.add_argument("--quick", action="store_true", help="one and two sessions, short speech (about a minute)")
    parser.add_argument(
        "--max-sessions",
        type=number(int, 1),
        metavar="N",
        help=f"most sessions tried (default {FULL_MAX_SESSIONS}; quick {QUICK_MAX_SESSIONS})",
    )
    parser.add_argument(
        "--seconds",
        type=number(float, MIN_SECONDS, 100.0),
        metavar="S",
        help=f"syllables per session and level (default {FULL_SECONDS:g}; quick {QUICK_SECONDS:g})",
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    options = Options(
        quick=args.quick,
        max_sessions=args.max_sessions or (QUICK_MAX_SESSIONS if args.quick else FULL_MAX_SESSIONS),
        seconds=args.seconds or (QUICK_SECONDS if args.quick else FULL_SECONDS),
    )
    result = run_and_write(run_bench(options), summarise, args.json)
    if result is None:
        return 1
    for level in result["levels"]:
        print(
            f"{level['sessions']:>3} sessions: {level['late_frame_pct']:6.2f} % late, "
            f"speech->lips {level['speech_to_lips_frames']} frames, interrupt->idle "
            f"{level['interrupt_to_idle_frames']} frames, A/V {level['av_offset_ms']['packet_arrival']} ms, "
            f"CPU {level['cpu_pct']}"
        )
    print(
        f"capacity {result['capacity_sessions']} sessions; edge RSS {result['rss_mb']['base']} MB "
        f"+ {result['rss_mb']['per_session']} MB per session"
    )
    return 0
