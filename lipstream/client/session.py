"""One session on an edge, controlled with its token: speech in (text, files, live PCM), interrupts, state, events."""

from __future__ import annotations

import json
import mimetypes
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from lipstream.client.errors import Unreachable, api_error
from lipstream.client.stream import LiveStream
from lipstream.client.transport import Transport


class Session:
    """`url` is where the session lives when the answer named it (the owning edge's public URL), else its path."""

    def __init__(self, transport: Transport, session_id: str, token: str, url: str | None = None) -> None:
        self._transport = transport
        self.id = session_id
        self.token = token
        self.path = url or f"/sessions/{session_id}"

    async def _call(self, method: str, suffix: str = "", **kwargs: Any) -> Any:
        return await self._transport.request(method, self.path + suffix, token=self.token, **kwargs)

    async def say(self, text: str, voice: str | None = None, engine: str | None = None) -> dict[str, Any]:
        """Speak `text` through a TTS engine (the edge's default when None); queued after what is playing.

        Answers once the engine's first audio is queued: `{"utterance", "engine", "voice", ...}`.
        """
        body: dict[str, Any] = {"text": text}
        body.update({key: value for key, value in (("voice", voice), ("engine", engine)) if value})
        return await self._call("POST", "/say", json=body)

    async def speak(self, audio: str | Path | bytes, content_type: str | None = None) -> dict[str, Any]:
        """Speak an audio file (a path, or its bytes; any format FFmpeg reads), queued after what is playing."""
        if isinstance(audio, bytes):
            data = audio
        else:
            data = Path(audio).read_bytes()
            content_type = content_type or mimetypes.guess_type(str(audio))[0]
        headers = {"Content-Type": content_type or "application/octet-stream"}
        return await self._call("POST", "/speech", data=data, headers=headers)

    def stream(self, sample_rate: int, sample_format: str = "s16le", channels: int = 1) -> LiveStream:
        """Live PCM (streaming TTS): `async with session.stream(24000) as s: await s.write(pcm)`."""
        return LiveStream(self._transport, self.path + "/stream", self.token, sample_rate, sample_format, channels)

    async def interrupt(self) -> int:
        """Stop speaking and drop everything queued; how many utterances were dropped."""
        return int((await self._call("POST", "/interrupt"))["dropped_utterances"])

    async def state(self) -> dict[str, Any]:
        return await self._call("GET")

    async def close(self) -> None:
        """End the session on the edge."""
        await self._call("DELETE")

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """The session's events (speech_start, speech_end, interrupted, tts_error, stats) until it ends."""
        try:
            async with self._transport.websocket(self.path + "/events", self.token) as ws:
                async for message in ws:
                    if message.type == aiohttp.WSMsgType.TEXT:
                        yield json.loads(message.data)
                    elif message.type == aiohttp.WSMsgType.ERROR:
                        raise Unreachable(f"the events of session {self.id} broke off: {ws.exception()}")
        except aiohttp.WSServerHandshakeError as exc:
            raise api_error(exc.status, exc.message) from exc
        except aiohttp.ClientError as exc:
            raise Unreachable(f"cannot follow the events of session {self.id}: {exc}") from exc
