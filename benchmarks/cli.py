"""`lipstream bench inference|edge|e2e|edge-capacity|soak|faults|overload|lips|gpu|network`: JSON results."""

from __future__ import annotations

import argparse

from benchmarks import edge, inference, lips
from benchmarks.capacity import cli as capacity
from benchmarks.e2e import cli as e2e
from benchmarks.faults import cli as faults
from benchmarks.gpu import cli as gpu
from benchmarks.network import cli as network
from benchmarks.overload import cli as overload
from benchmarks.soak import cli as soak


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help="benchmarks that write JSON results")
    benches = parser.add_subparsers(dest="bench", required=True, metavar="BENCH")
    for bench in (inference, edge, e2e, capacity, soak, faults, overload, lips, gpu, network):
        bench.register(benches)
