"""`lipstream bench overload`: its arguments; the run written as JSON, with a PNG beside it when matplotlib is there."""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.e2e.written import run_and_write
from benchmarks.overload.report import plot_overload, summarise
from benchmarks.overload.run import Options, run_overload
from media_server.config import SessionConfig

DEFAULT_MAX_SESSIONS = SessionConfig().max_sessions


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("overload", help="twice the sessions the edge carries: who gets in, at what fps")
    parser.add_argument("--json", type=Path, required=True, metavar="OUT", help="write the results as JSON here")
    parser.add_argument("--quick", action="store_true", help="4 viewers for 2 sessions, 8 s of load")
    parser.add_argument(
        "--max-sessions",
        type=int,
        default=DEFAULT_MAX_SESSIONS,
        metavar="N",
        help=f"the edge's max_sessions (default {DEFAULT_MAX_SESSIONS}, its own); raise it to see the edge "
        "refuse on missed deadlines alone",
    )
    parser.add_argument(
        "--viewers", type=int, metavar="N", help=f"viewers arriving (default twice {DEFAULT_MAX_SESSIONS})"
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    if args.quick:
        options = Options(
            viewers=4, max_sessions=2, arrive_every_s=0.5, load_s=8.0, recovery_timeout_s=20.0, quick=True
        )
    else:
        viewers = args.viewers or 2 * DEFAULT_MAX_SESSIONS
        options = Options(
            viewers=viewers,
            max_sessions=args.max_sessions,
            arrive_every_s=1.0,
            load_s=viewers + 20.0,
            recovery_timeout_s=30.0,
            quick=False,
        )
    result = run_and_write(run_overload(options), summarise, args.json, plot_overload)
    if result is None:
        return 1
    print(
        f"{result['admitted']} of {options.viewers} viewers admitted (refusals: {result['refusals']}); "
        f"lowest frame rate {result['min_fps']} fps, {result['late_frame_pct']} % of speaking frames late; "
        f"a new session admitted {result['recovered_after_s']} s after the load ended"
    )
    return 0
