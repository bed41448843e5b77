"""Speech as a live PCM stream over a WebSocket (streaming TTS).

Protocol: a JSON header `{"sample_rate": 24000, "format": "s16le", "channels": 1}`,
then binary PCM chunks, and `{"type": "end"}` after each utterance.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import WSMsgType, web

from media_server.speech.audio import AudioTooLongError, PcmFormat
from media_server.speech.live import LiveFeed
from media_server.speech.timeline import SpeechQueueFull
from signaling.access import controlled_session
from signaling.state import config_of


def _whole(value: Any, name: str) -> int:
    """A JSON number that is a whole number (24000 or 24000.0), else ValueError."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not float(value).is_integer():
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    return int(value)


def pcm_format(header: Any) -> PcmFormat:
    """The stream header as a PCM format; ValueError (with what is wrong) for anything else."""
    if not isinstance(header, dict) or "sample_rate" not in header:
        raise ValueError('send {"sample_rate": 24000, "format": "s16le", "channels": 1} first')
    sample_format = header.get("format", "s16le")
    if not isinstance(sample_format, str):
        raise ValueError(f"format must be a string, got {sample_format!r}")
    return PcmFormat(
        _whole(header["sample_rate"], "sample_rate"), sample_format, _whole(header.get("channels", 1), "channels")
    )


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
                except (json.JSONDecodeError, RecursionError):
                    await fail("text messages must be JSON", close=False)
                    continue
                if feed is None:
                    try:
                        feed = session.live_feed(pcm_format(data))
                    except ValueError as exc:
                        await fail(f"bad stream header: {exc}", close=True)
                        break
                    await ws.send_json({"type": "ready"})
                elif isinstance(data, dict) and data.get("type") == "end":
                    utterance = await feed.end()
                    await ws.send_json({"type": "ended", "utterance": utterance.id if utterance else None})
                else:
                    await fail('after the header, text messages are {"type": "end"}', close=False)
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
