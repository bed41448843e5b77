"""A session's events (speech starting and ending, interrupts, stats) fanned out to whoever listens.

Listeners are called synchronously by the session, so each must be quick and never wait: a consumer
that sends over a network takes an `EventQueue`, which is bounded and never blocks the session.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

Event = dict[str, Any]
Listener = Callable[[Event], None]
STATS = "stats"


class EventFanOut:
    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    @property
    def listening(self) -> bool:
        return bool(self._listeners)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call `listener` with every event from now on; returns the unsubscribe function."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def publish(self, event: Event) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # noqa: BLE001 - one broken listener must not silence the others
                log.exception("event listener failed on %s", event.get("type"))


class EventQueue:
    """One consumer's events, at most `limit` of them: a slow consumer loses old stats, never the session's time.

    A stats message replaces any older one still queued (a newer snapshot says all it said); past
    the limit the oldest event goes, and `dropped` counts it. `close()` lets the consumer take what
    is queued, then `get()` answers None.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"an event queue holds at least one event, got {limit}")
        self._limit = limit
        self._events: deque[Event] = deque()
        self._ready = asyncio.Event()
        self._closed = False
        self.dropped = 0

    def put(self, event: Event) -> None:
        if self._closed:
            return
        if event.get("type") == STATS:
            stale = next((queued for queued in self._events if queued.get("type") == STATS), None)
            if stale is not None:
                self._events.remove(stale)
                self.dropped += 1
        if len(self._events) >= self._limit:
            self._events.popleft()
            self.dropped += 1
        self._events.append(event)
        self._ready.set()

    def close(self) -> None:
        self._closed = True
        self._ready.set()

    async def get(self) -> Event | None:
        while not self._events:
            if self._closed:
                return None
            self._ready.clear()
            await self._ready.wait()
        return self._events.popleft()
