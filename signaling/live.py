"""Speech as a live PCM stream over a WebSocket (streaming TTS).

Protocol: a JSON header `{"sample_rate": 24000, "format": "s16le", "channels": 1}`,
then binary PCM chunks, and `{"type": "end"}` after each utterance.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import WSMsgType, web

from media_server.speech.audio import AudioTooLongError
from media_server.speech.live import LiveFeed
from media_server.speech.timeline import SpeechQueueFull
from signaling.access import controlled_session
from signaling.state import config_of


async def live_stream(request: web.Request) -> web.WebSocketResponse:
    session = controlled_session(request)
    limit = config_of(request).sessions.live_chunk_max_kb * 1024
    ws = web.WebSocketResponse(max_msg_size=limit, heartbeat=20)
    await ws.prepare(request)
    feed: LiveFeed | None = None

    async def close_with_session() -> None:
        await session.ended.wait()
        await ws.close(message=b"session ended")

    async def fail(message: str, close: bool) -> None:
        await ws.send_json({"type": "error", "message": message})
        if close:
            await ws.close()

    watcher = asyncio.create_task(close_with_session())
    try:
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                try:
                    data: Any = json.loads(message.data)
                except json.JSONDecodeError:
                    await fail("text messages must be JSON", close=False)
                    continue
                if feed is None:
                    try:
                        feed = session.live_feed(
                            int(data["sample_rate"]), data.get("format", "s16le"), int(data.get("channels", 1))
                        )
                    except (KeyError, TypeError, ValueError) as exc:
                        await fail(f"bad stream header: {exc}", close=True)
                        break
                    await ws.send_json({"type": "ready"})
                elif data.get("type") == "end":
                    utterance = await feed.end()
                    await ws.send_json({"type": "ended", "utterance": utterance.id if utterance else None})
            elif message.type == WSMsgType.BINARY:
                if feed is None:
                    await fail("send the JSON header first", close=True)
                    break
                try:
                    await feed.push(message.data)
                except SpeechQueueFull as exc:
                    await fail(str(exc), close=False)
                except AudioTooLongError as exc:
                    await fail(str(exc), close=True)
                    break
    finally:
        watcher.cancel()
        if feed is not None and feed.active and not session.closed:
            await feed.end()
    return ws
