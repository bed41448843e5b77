"""Live PCM into a session over its WebSocket: utterances that speak as the audio arrives (streaming TTS)."""

from __future__ import annotations

import json
from types import TracebackType
from typing import Any

import aiohttp

from lipstream.client.errors import LipstreamError, Unreachable, api_error
from lipstream.client.transport import Transport


class LiveStream:
    """`async with session.stream(24000) as s: await s.write(pcm)`; `end()` closes one utterance and
    the next write opens another; leaving the block ends the last one and closes the socket.

    The edge stops reading while a feed runs `sessions.live_buffer_seconds` ahead of playback, so
    `write` then waits: a producer faster than real time is paced by the avatar.
    """

    def __init__(
        self, transport: Transport, path: str, token: str, sample_rate: int, sample_format: str, channels: int
    ) -> None:
        self._transport = transport
        self._path = path
        self._token = token
        self._header = {"sample_rate": sample_rate, "format": sample_format, "channels": channels}
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._open_utterance = False

    async def open(self) -> LiveStream:
        try:
            self._ws = await self._transport.websocket(self._path, self._token)
            await self._ws.send_str(json.dumps(self._header))
            await self._expect("ready")
        except aiohttp.WSServerHandshakeError as exc:
            raise api_error(exc.status, exc.message) from exc
        except aiohttp.ClientError as exc:
            await self.close()
            raise Unreachable(f"cannot open the live stream of {self._path}: {exc}") from exc
        except LipstreamError:  # the edge refused the header: the socket is closed with it
            await self.close()
            raise
        return self

    async def __aenter__(self) -> LiveStream:
        return await self.open()

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.close()

    def _socket(self) -> aiohttp.ClientWebSocketResponse:
        if self._ws is None or self._ws.closed:
            raise LipstreamError("the live stream is not open")
        return self._ws

    async def write(self, pcm: bytes) -> None:
        """Audio in the stream's format (a chunk may split a sample anywhere)."""
        if not pcm:
            return
        try:
            await self._socket().send_bytes(pcm)
        except (aiohttp.ClientError, ConnectionError) as exc:
            raise Unreachable(f"the live stream of {self._path} broke off: {exc}") from exc
        self._open_utterance = True

    async def end(self) -> int | None:
        """End the current utterance (it plays out); its id, or None when nothing was sent since the last end."""
        if not self._open_utterance:
            return None
        self._open_utterance = False
        ws = self._socket()
        await ws.send_str(json.dumps({"type": "end"}))
        ended = await self._expect("ended")
        return ended.get("utterance")

    async def _expect(self, kind: str) -> dict[str, Any]:
        """The edge's next answer of `kind`; its `error` messages (queue full, too long) raise."""
        ws = self._socket()
        async for message in ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            answer = json.loads(message.data)
            if answer.get("type") == kind:
                return answer
            if answer.get("type") == "error":
                raise LipstreamError(f"the live stream of {self._path}: {answer.get('message')}")
        raise Unreachable(f"the live stream of {self._path} closed ({ws.close_code})")

    async def close(self) -> None:
        ws = self._ws
        if ws is None:
            return
        try:
            if not ws.closed:
                await self.end()
        finally:
            self._ws = None
            await ws.close()
