"""`lipstream bench network`: it makes its namespace, runs itself inside it, and removes it; JSON and a PNG."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from benchmarks.e2e import BenchError
from benchmarks.e2e.written import run_and_write
from benchmarks.kit.arguments import number
from benchmarks.network import netns
from benchmarks.network.plot import plot_network
from benchmarks.network.report import summarise
from benchmarks.network.run import VIEWERS, Options, run_network

FULL_RATES: tuple[int | None, ...] = (None, 2000, 1000, 600, 300)
FULL_SECONDS, QUICK_SECONDS = 30.0, 10.0
SETTLE_S = 5.0


_link_rate = number(int, 50, 100_000)  # kbit/s


def _rates(text: str) -> tuple[int | None, ...]:
    rates: list[int | None] = []
    for part in text.split(","):
        if part.strip() == "unlimited":
            rates.append(None)
            continue
        rates.append(_link_rate(part))
    return tuple(rates)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "network", help="a talking session through a rate-limited link, adaptive against fixed bitrate (root)"
    )
    parser.add_argument("--json", type=Path, required=True, metavar="OUT", help="write the results as JSON here")
    parser.add_argument("--quick", action="store_true", help=f"sessions of {QUICK_SECONDS:g} s, not {FULL_SECONDS:g}")
    parser.add_argument(
        "--rates",
        type=_rates,
        metavar="R,R,...",
        help="link rates in kbit/s, 'unlimited' for none (default unlimited,2000,1000,600,300)",
    )
    parser.add_argument("--seconds", type=number(float, 8.0, 120.0), metavar="S", help="speech per session")
    parser.add_argument("--adaptive-only", action="store_true", help="no fixed-bitrate session to compare with")
    parser.add_argument(
        "--viewer",
        choices=VIEWERS,
        default="aiortc",
        help="who watches: an aiortc peer (default), or the demo page in Chromium (needs the test extra)",
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    if os.environ.get(netns.NAMESPACE_ENV) is None:
        return _in_namespace(args)
    options = Options(
        quick=args.quick,
        rates_kbps=args.rates or FULL_RATES,
        speech_s=args.seconds or (QUICK_SECONDS if args.quick else FULL_SECONDS),
        settle_s=SETTLE_S,
        modes=("adaptive",) if args.adaptive_only else ("adaptive", "fixed"),
        viewer=args.viewer,
    )
    result = run_and_write(run_network(options), summarise, args.json, plot_network)
    if result is None:
        return 1
    for entry in result["rates"]:
        rate = "unlimited" if entry["rate_kbps"] is None else f"{entry['rate_kbps']} kbit/s"
        for mode in options.modes:
            s = entry[mode]
            print(
                f"{rate:>14} {mode:>8}: {s['decoded_fps']:5.1f} fps, {s['freezes_over_200ms']} freezes "
                f"(longest {s['longest_gap_ms']:.0f} ms), keyframes {s['keyframes']['requested']} asked / "
                f"{s['keyframes']['sent']} sent, audio lost {s['audio_packets']['lost']}/"
                f"{s['audio_packets']['expected']}, target median {s['target_kbps']['median']} kbit/s, "
                f"A/V {s['av_offset_ms']['rtp_sender_reports']} ms"
            )
        missed = [name for name, target in entry["targets"].items() if not target["met"]]
        if entry["targets"]:
            print(f"{'':>14} targets: {'all met' if not missed else 'missed ' + ', '.join(missed)}")
    return 0


def _in_namespace(args: argparse.Namespace) -> int:
    """This command again, inside a fresh namespace that is removed after."""
    try:
        netns.require_root("lipstream bench network")
        name = f"lipstream-bench-{os.getpid()}"
        netns.create(name)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    argv = ["bench", "network", "--json", str(args.json.resolve())]
    if args.quick:
        argv.append("--quick")
    if args.rates:
        argv += ["--rates", ",".join("unlimited" if r is None else str(r) for r in args.rates)]
    if args.seconds:
        argv += ["--seconds", f"{args.seconds:g}"]
    if args.adaptive_only:
        argv.append("--adaptive-only")
    argv += ["--viewer", args.viewer]
    try:
        return netns.run_inside(name, argv)
    finally:
        netns.delete(name)
