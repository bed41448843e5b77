"""What every text-to-speech engine is: voices, and a synthesis that streams PCM as it is made.

An engine answers `start(text, voice)` with a `Synthesis` as soon as it knows the audio's format;
the session reads its chunks as they come and speaks them as a live utterance, so the lips move
with the first audio, not after the whole sentence.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from media_server.speech.audio import PcmFormat


class TtsRequestError(ValueError):
    """A say request the engines cannot take: empty text, an unknown engine or voice (400)."""


class TextTooLong(ValueError):
    """Text over `tts.max_chars` (413)."""


class TtsUnavailable(RuntimeError):
    """No engine can speak: what to install or configure is in the message (503)."""


class TtsBusy(RuntimeError):
    """`tts.max_streams` syntheses are running already (503)."""


class TtsFailed(RuntimeError):
    """The engine failed: it exited, answered an error or sent what is not audio (502)."""


class TtsTimeout(TtsFailed):
    """The engine sent nothing for longer than its timeout (504 before the first audio)."""


@dataclass(frozen=True)
class Voice:
    id: str  # what a say request names
    name: str
    language: str | None = None
    gender: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value is not None}


class ByteStream(Protocol):
    """A subprocess's stdout or an HTTP response body (asyncio's and aiohttp's readers both are)."""

    async def read(self, n: int = -1) -> bytes: ...

    async def readexactly(self, n: int) -> bytes: ...


READ_BYTES = 8192  # per chunk: about 0.2 s of 22 kHz s16 speech


class Synthesis:
    """PCM of one text as the engine makes it; `aclose()` stops the engine and frees what it holds."""

    def __init__(
        self,
        pcm: PcmFormat,
        stream: ByteStream,
        finished: Callable[[], Awaitable[None]],
        close: Callable[[], Awaitable[None]],
    ) -> None:
        self.pcm = pcm
        self._stream = stream
        self._finished = finished  # raises TtsFailed when the engine ended badly
        self._close = close
        self._closed = False
        self._on_close: list[Callable[[], None]] = []

    def on_close(self, callback: Callable[[], None]) -> None:
        """Call `callback` once the synthesis is closed (the edge counts running syntheses so)."""
        self._on_close.append(callback)

    async def read(self) -> bytes:
        """The next chunk of PCM; b"" once the engine has finished (well: else TtsFailed)."""
        data = await self._stream.read(READ_BYTES)
        if not data:
            await self._finished()
        return data

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self._close()
        finally:
            for callback in self._on_close:
                callback()


class TtsEngine(Protocol):
    name: str

    def unavailable(self) -> str | None:
        """Why the engine cannot speak (what to install or configure), or None when it can."""
        ...

    def default_voice(self) -> str: ...

    async def voices(self) -> list[Voice]: ...

    async def check_voice(self, voice: str) -> None:
        """TtsRequestError unless the engine has `voice`."""
        ...

    async def start(self, text: str, voice: str) -> Synthesis: ...

    async def close(self) -> None: ...
