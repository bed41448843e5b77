"""`lipstream bench inference|edge|e2e`: each writes its results as JSON."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from benchmarks import edge, inference
from benchmarks.e2e import cli as e2e

REGISTRARS: list[Callable[[argparse._SubParsersAction], None]] = [inference.register, edge.register, e2e.register]
