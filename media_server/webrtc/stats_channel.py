"""The `stats` data channel: the session's state twice a second, and its speech events as they happen."""

from __future__ import annotations

import asyncio
import json

from aiortc import RTCDataChannel

from media_server.session.events import Event
from media_server.session.session import Session

STATS_LABEL = "stats"


async def send_stats(session: Session, channel: RTCDataChannel, interval_s: float) -> None:
    """Runs until cancelled (the session's end)."""

    def send(message: Event) -> None:
        if channel.readyState == "open":
            channel.send(json.dumps(message))

    unsubscribe = session.events.subscribe(send)
    try:
        while True:
            await asyncio.sleep(interval_s)
            send({"type": "stats", **session.state()})
    finally:
        unsubscribe()
