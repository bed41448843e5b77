"""What a bench command does around its run: aioice's chatter quieted, a failure said in one line,
the results written as JSON with their plot beside them. The benches that run real clients share it."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from benchmarks.e2e import BenchError
from benchmarks.kit.viewer import ViewerError

T = TypeVar("T")
Result = dict[str, Any]


def run_bench(main: Coroutine[Any, Any, T]) -> T | None:
    """`main`'s result, or None when the bench could not run (the reason is on stderr)."""
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("aioice").setLevel(logging.WARNING)  # a dozen lines per connection
    try:
        return asyncio.run(main)
    except (BenchError, ViewerError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None


def write_results(result: Result, out: Path, plot: Callable[[Result, Path], bool]) -> str:
    """The JSON at `out` and the plot beside it (`.png`); what became of the plot, in words."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    png = out.with_suffix(".png")
    return f"plot: {png}" if plot(result, png) else "no plot: matplotlib is not installed"
