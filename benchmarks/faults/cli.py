"""`lipstream bench faults`: its arguments; the run written as JSON, with a PNG beside it when matplotlib is there."""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.e2e.output import run_bench, write_results
from benchmarks.faults.plot import plot_faults
from benchmarks.faults.report import summarise
from benchmarks.faults.run import Options, run_faults

FULL = Options(quick=False, down_s=5.0, lead_s=4.0, control_s=5.0, recovery_timeout_s=30.0, tail_s=3.0, speech_s=110.0)
QUICK = Options(quick=True, down_s=3.0, lead_s=2.0, control_s=2.0, recovery_timeout_s=8.0, tail_s=1.0, speech_s=50.0)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("faults", help="inference killed and hung under speaking viewers: gaps, recovery")
    parser.add_argument("--json", type=Path, required=True, metavar="OUT", help="write the results as JSON here")
    parser.add_argument(
        "--quick", action="store_true", help=f"faults of {QUICK.down_s:g} s instead of {FULL.down_s:g} s"
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    measured = run_bench(run_faults(QUICK if args.quick else FULL))
    if measured is None:
        return 1
    result = summarise(measured)
    plotted = write_results(result, args.json, plot_faults)
    for fault in result["faults"]:
        checks, health = fault["targets"], fault["health"]
        print(
            f"{fault['fault']}: longest gap {checks['longest_gap_ms']['measured']} ms, {fault['frames_lost']} frames "
            f"lost, lips again {checks['lips_again_s']['measured']} s after the inference was back; /health 503 "
            f"after {health['went_503_after_injection_s']} s, 200 again "
            f"{health['back_to_200_after_inference_back_s']} s after it was back"
        )
    print(plotted)
    return 0
