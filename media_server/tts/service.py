"""The edge's text to speech: its engines, the checks a say request passes, and a bound on syntheses.

`start` answers once the engine's first audio has arrived (or fails: an unknown voice, an engine
that cannot run, one silent past `first_audio_timeout_s`), so a session can queue the speech as
a live utterance that is already speaking.
"""

from __future__ import annotations

import asyncio
from typing import Any, NamedTuple

from media_server.config import TtsConfig
from media_server.tts.engine import (
    Synthesis,
    TextTooLong,
    TtsBusy,
    TtsEngine,
    TtsRequestError,
    TtsTimeout,
    TtsUnavailable,
)
from media_server.tts.espeak import EspeakEngine
from media_server.tts.openai_compatible import OpenAiEngine
from media_server.tts.piper import PiperEngine


class Started(NamedTuple):
    """A synthesis under way: its first chunk of audio is in hand."""

    synthesis: Synthesis
    first: bytes
    engine: str
    voice: str


class TextToSpeech:
    def __init__(self, config: TtsConfig) -> None:
        self.config = config
        self.espeak = EspeakEngine(config.espeak)
        engines: list[TtsEngine] = [self.espeak, OpenAiEngine(config.openai), PiperEngine(config.piper)]
        self._engines = {engine.name: engine for engine in engines}
        self._running = 0

    def engine(self, name: str | None) -> TtsEngine:
        """The engine a request names (the configured default when it names none), if it can speak.

        The default engine unavailable, the edge cannot speak at all (TtsUnavailable, 503); an engine
        the request chose is one this edge does not offer (TtsRequestError, 400).
        """
        engine = self._engines.get(name or self.config.engine)
        if engine is None:
            raise TtsRequestError(f"unknown engine '{name}' (known: {', '.join(self._engines)})")
        reason = engine.unavailable()
        if reason is not None and name is None:
            raise TtsUnavailable(f"text to speech is unavailable: {reason}")
        if reason is not None:
            raise TtsRequestError(f"the {engine.name} engine is not available on this edge: {reason}")
        return engine

    def check_text(self, text: object) -> str:
        if not isinstance(text, str) or not text.strip():
            raise TtsRequestError("text must be a non-empty string")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:  # JSON may carry lone surrogates, which are no text
            raise TtsRequestError("text is not valid Unicode (a lone surrogate)") from exc
        if len(text) > self.config.max_chars:
            raise TextTooLong(f"text is {len(text)} characters; at most {self.config.max_chars} are spoken at once")
        return text

    async def start(self, text: str, voice: str | None, engine_name: str | None) -> Started:
        engine = self.engine(engine_name)
        text = self.check_text(text)
        voice = voice or engine.default_voice()
        await engine.check_voice(voice)
        if self._running >= self.config.max_streams:
            raise TtsBusy(f"{self.config.max_streams} syntheses are running on this edge; retry shortly")
        self._running += 1
        synthesis: Synthesis | None = None
        try:
            async with asyncio.timeout(self.config.first_audio_timeout_s):
                synthesis = await engine.start(text, voice)
                synthesis.on_close(self._released)
                first = await synthesis.read()
            if not first:
                raise TtsRequestError(f"{engine.name} made no audio of this text")
        except BaseException as exc:
            if synthesis is None:
                self._released()
            else:
                await synthesis.aclose()
            if isinstance(exc, TimeoutError):
                raise TtsTimeout(f"{engine.name} sent no audio within {self.config.first_audio_timeout_s:g} s") from exc
            raise
        return Started(synthesis, first, engine.name, voice)

    def _released(self) -> None:
        self._running -= 1

    async def next_chunk(self, synthesis: Synthesis) -> bytes:
        """The next chunk, or TtsTimeout when the engine stalls past `stall_timeout_s`."""
        try:
            async with asyncio.timeout(self.config.stall_timeout_s):
                return await synthesis.read()
        except TimeoutError as exc:
            raise TtsTimeout(f"the engine sent nothing for {self.config.stall_timeout_s:g} s") from exc

    async def voices(self) -> dict[str, Any]:
        """Every engine: whether it can speak (or why not), its default voice and its voices."""
        engines: dict[str, Any] = {}
        for name, engine in self._engines.items():
            reason = engine.unavailable()
            entry: dict[str, Any] = {"available": reason is None}
            if reason is None:
                entry["default_voice"] = engine.default_voice()
                entry["voices"] = [voice.as_json() for voice in await engine.voices()]
            else:
                entry["reason"] = reason
            engines[name] = entry
        if self.espeak.unavailable() is None:
            engines[self.espeak.name]["variants"] = await self.espeak.variants()
        return {"default_engine": self.config.engine, "engines": engines}

    async def close(self) -> None:
        for engine in self._engines.values():
            await engine.close()
