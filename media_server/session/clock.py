"""A session's A/V clock: video frame n is due at t0 + n/25 s, audio chunk k at t0 + k * 20 ms.

The clock starts when either track first asks, on the next 40 ms tick of the event loop's
clock: every session of a process then wakes at the same instants, once for all of them,
not once each. A track that falls more than MAX_BEHIND_FRAMES behind (a stalled event loop)
skips ahead instead of bursting, so the stream never drifts from real time.
"""

from __future__ import annotations

import asyncio
import math
from typing import NamedTuple

from lipstream.timebase import FRAME_SECONDS, PLAYBACK_CHUNK_SECONDS

MAX_BEHIND_FRAMES = 3


class Slot(NamedTuple):
    """The next frame (or chunk) a track sends, and how many it skipped to get there."""

    number: int
    skipped: int


class AvClock:
    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._t0: float | None = None
        self._next_frame = 0
        self._next_chunk = 0

    @property
    def t0(self) -> float:
        if self._t0 is None:
            self._t0 = math.ceil(self._loop.time() / FRAME_SECONDS) * FRAME_SECONDS
        return self._t0

    @property
    def next_frame_number(self) -> int:
        """The video frame the video track renders next."""
        return self._next_frame

    def frame_due(self, frame: int) -> float:
        return self.t0 + frame * FRAME_SECONDS

    def chunk_due(self, chunk: int) -> float:
        return self.t0 + chunk * PLAYBACK_CHUNK_SECONDS

    def take_frame(self) -> Slot:
        n = self._next_frame
        behind = int((self._loop.time() - self.frame_due(n)) / FRAME_SECONDS)
        skipped = behind if behind > MAX_BEHIND_FRAMES else 0
        self._next_frame = n + skipped + 1
        return Slot(n + skipped, skipped)

    def take_chunk(self) -> Slot:
        k = self._next_chunk
        behind = int((self._loop.time() - self.chunk_due(k)) / PLAYBACK_CHUNK_SECONDS)
        skipped = behind if behind > 2 * MAX_BEHIND_FRAMES else 0
        self._next_chunk = k + skipped + 1
        return Slot(k + skipped, skipped)

    def skip_chunks_to(self, chunk: int) -> None:
        """Chunks before `chunk` will not be sent (silence under DTX): the next one taken is `chunk`, or later."""
        self._next_chunk = max(self._next_chunk, chunk)

    def next_chunk_slot(self) -> int:
        """The first chunk whose slot has not begun yet."""
        return int((self._loop.time() - self.t0) / PLAYBACK_CHUNK_SECONDS) + 1

    def seconds_until(self, due: float) -> float:
        return due - self._loop.time()

    async def sleep_until(self, due: float) -> None:
        delay = due - self._loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
