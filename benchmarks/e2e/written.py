"""The common end of the benches whose clients are aiortc viewers: run, summarise, write the JSON and the plot."""

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

Measured = TypeVar("Measured")
Result = dict[str, Any]


def run_and_write(
    run: Coroutine[Any, Any, Measured],
    summarise: Callable[[Measured], Result],
    out: Path,
    plot: Callable[[Result, Path], bool] | None = None,
) -> Result | None:
    """The summary, written as JSON to `out` (and plotted beside it); None, having said why, if the bench failed."""
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("aioice").setLevel(logging.WARNING)  # a dozen lines per connection
    try:
        result = summarise(asyncio.run(run))
    except (BenchError, ViewerError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if plot is not None:
        png = out.with_suffix(".png")
        print(f"plot: {png}" if plot(result, png) else "no plot: matplotlib is not installed")
    return result
