"""Giving back what ended sessions held: their reference cycles collected, the freed heap returned to the system.

The edge freezes its start-up objects and otherwise leaves collection to Python's thresholds,
which seldom reach the oldest generation: a session's peer connection, tracks and codecs are
reference cycles that lived long enough to get there, so they stayed until some later full
collection, and glibc kept the pages they were freed from. Measured with `lipstream bench
soak`: idle RSS rose by 35-145 MB over a few hundred sessions without this, and stayed within
1 MB of its baseline with it. One full collection takes a few milliseconds here; it runs once
per `delay_s` however many sessions end in that time.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time

from lipstream.lifecycle import trim_heap

log = logging.getLogger(__name__)

RECLAIM_DELAY_S = 1.0


class Reclaimer:
    """Coalesces the ends of sessions into one collection and one heap trim a little later."""

    def __init__(self, delay_s: float = RECLAIM_DELAY_S) -> None:
        self._delay_s = delay_s
        self._pending: asyncio.TimerHandle | None = None
        self._trim: asyncio.Future[None] | None = None

    def soon(self) -> None:
        """A session has ended: reclaim within `delay_s`, together with whatever else ends by then."""
        if self._pending is None:
            self._pending = asyncio.get_running_loop().call_later(self._delay_s, self._reclaim)

    def _reclaim(self) -> None:
        self._pending = None
        started = time.perf_counter()
        found = gc.collect()  # on the loop: the collector holds the interpreter whichever thread runs it
        log.debug("collected %d objects in %.1f ms", found, 1000 * (time.perf_counter() - started))
        if self._trim is None or self._trim.done():
            self._trim = asyncio.get_running_loop().run_in_executor(None, trim_heap)  # touches every free page

    async def flush(self) -> None:
        """Reclaim now what is pending, and wait for the trim (at shutdown)."""
        if self._pending is not None:
            self._pending.cancel()
            self._reclaim()
        if self._trim is not None:
            await self._trim
