"""A session's events for apps, over a WebSocket: what the `stats` data channel tells the page.

`GET /sessions/{id}/events` (the session's token as a bearer header or `?token=`) streams JSON
messages: speech_start, speech_end (interrupted or not, and how much played), interrupted,
tts_error and stats. Each subscriber has its own bounded queue (`sessions.event_queue_size`): a
consumer that falls behind loses old stats, and the session never waits for it. The socket closes
when the session ends, after the events of its end.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from media_server.session.events import EventQueue
from signaling.access import controlled_session
from signaling.state import config_of

MAX_CLIENT_MESSAGE = 4096  # the client has nothing to say; anything larger closes the socket


async def session_events(request: web.Request) -> web.WebSocketResponse:
    session = controlled_session(request)
    ws = web.WebSocketResponse(max_msg_size=MAX_CLIENT_MESSAGE, heartbeat=20)
    await ws.prepare(request)
    queue = EventQueue(config_of(request).sessions.event_queue_size)
    unsubscribe = session.events.subscribe(queue.put)

    async def until_over() -> None:
        """The session's end, or the client going away (its messages are read and ignored)."""
        ended = asyncio.ensure_future(session.ended.wait())
        reading = asyncio.ensure_future(_drain(ws))
        try:
            await asyncio.wait({ended, reading}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ended.cancel()
            reading.cancel()
            queue.close()

    watcher = asyncio.create_task(until_over())
    try:
        while (event := await queue.get()) is not None and not ws.closed:
            await ws.send_json(event)
    except ConnectionError:  # the client went away mid-send
        pass
    finally:
        unsubscribe()
        watcher.cancel()
        await ws.close(message=b"session ended" if session.closed else b"")
    return ws


async def _drain(ws: web.WebSocketResponse) -> None:
    async for _ in ws:
        pass
