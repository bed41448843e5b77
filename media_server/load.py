"""How well this edge keeps time: the share of recent frames that were late, over a sliding window.

A frame counts as late when it went out more than a frame after its slot, when the clock had
to skip it, or when it should have moved the lips and the mouth came too late. New sessions
are refused while that share is over the configured bound, so an edge that is already missing
deadlines does not take on more work. A window with less than a second of frames says nothing.
"""

from __future__ import annotations

import time
from collections import deque

BUCKET_S = 0.25
MIN_FRAMES = 25  # one session's second: fewer frames are too few to call the edge late


class LoadMeter:
    def __init__(self, window_s: float) -> None:
        self._window_s = window_s
        self._buckets: deque[list[float]] = deque()  # [start time, frames, late frames]

    def _bucket(self, now: float) -> list[float]:
        if not self._buckets or now - self._buckets[-1][0] >= BUCKET_S:
            self._buckets.append([now, 0.0, 0.0])
        while self._buckets and now - self._buckets[0][0] > self._window_s:
            self._buckets.popleft()
        return self._buckets[-1]

    def frames(self, sent: int, late: int) -> None:
        bucket = self._bucket(time.monotonic())
        bucket[1] += sent
        bucket[2] += late

    def late_pct(self) -> float:
        self._bucket(time.monotonic())
        sent = sum(b[1] for b in self._buckets)
        return 100.0 * sum(b[2] for b in self._buckets) / sent if sent >= MIN_FRAMES else 0.0
