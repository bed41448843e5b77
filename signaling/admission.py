"""Who may open a session now: a token bucket per client address, so nobody can fill the edge alone."""

from __future__ import annotations

import time
from dataclasses import dataclass

MAX_CLIENTS = 10_000  # buckets kept; full (idle) ones are forgotten first


@dataclass
class _Bucket:
    tokens: float
    updated: float


class SessionRateLimit:
    def __init__(self, per_minute: float, burst: int) -> None:
        self._rate = per_minute / 60.0
        self._burst = float(burst)
        self._buckets: dict[str, _Bucket] = {}

    def _refill(self, bucket: _Bucket, now: float) -> None:
        bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.updated) * self._rate)
        bucket.updated = now

    def take(self, client: str) -> float:
        """0 when `client` may open a session now (and it is counted), else the seconds until it may."""
        now = time.monotonic()
        bucket = self._buckets.get(client)
        if bucket is None:
            if len(self._buckets) >= MAX_CLIENTS:
                self._forget_idle(now)
            bucket = self._buckets[client] = _Bucket(self._burst, now)
        self._refill(bucket, now)
        if bucket.tokens < 1.0:
            return (1.0 - bucket.tokens) / self._rate
        bucket.tokens -= 1.0
        return 0.0

    def _forget_idle(self, now: float) -> None:
        for client, bucket in list(self._buckets.items()):
            self._refill(bucket, now)
            if bucket.tokens >= self._burst:
                del self._buckets[client]
        if len(self._buckets) >= MAX_CLIENTS:  # all busy: the oldest go
            for client in sorted(self._buckets, key=lambda c: self._buckets[c].updated)[: MAX_CLIENTS // 10]:
                del self._buckets[client]
