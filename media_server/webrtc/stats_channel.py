"""The `stats` data channel: the session's events (its state twice a second, speech as it happens), as JSON."""

from __future__ import annotations

import json

from aiortc import RTCDataChannel

from media_server.session.events import Event
from media_server.session.session import Session

STATS_LABEL = "stats"


async def send_stats(session: Session, channel: RTCDataChannel) -> None:
    """Runs until the session ends (or the task is cancelled)."""

    def send(message: Event) -> None:
        if channel.readyState == "open":
            channel.send(json.dumps(message))

    unsubscribe = session.events.subscribe(send)
    try:
        await session.ended.wait()
    finally:
        unsubscribe()
