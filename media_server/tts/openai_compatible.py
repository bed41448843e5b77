"""Any server that speaks the OpenAI-compatible `POST {base_url}/audio/speech`, streamed.

The request names the model, the voice and `response_format` (`pcm`: raw 16-bit mono at
`pcm_sample_rate`, 24 kHz in OpenAI's API; or `wav`); the audio is read as the body arrives.
The API key comes from the environment variable the config names, never from the config itself.
"""

from __future__ import annotations

import json
import os

import aiohttp

from media_server.config import OpenAiTtsConfig
from media_server.speech.audio import PcmFormat
from media_server.tts.engine import Synthesis, TtsFailed, TtsRequestError, Voice
from media_server.tts.wav import read_wav_format

ERROR_BYTES = 2000  # of an error answer, quoted


class OpenAiEngine:
    name = "openai"

    def __init__(self, config: OpenAiTtsConfig) -> None:
        self._config = config
        self._http: aiohttp.ClientSession | None = None

    def unavailable(self) -> str | None:
        if not self._config.base_url:
            return "no OpenAI-compatible speech server is configured: set tts.openai.base_url"
        return None

    def default_voice(self) -> str:
        return self._config.voice

    async def voices(self) -> list[Voice]:
        return [Voice(name, name) for name in self._config.voices]

    async def check_voice(self, voice: str) -> None:
        if voice not in self._config.voices:
            raise TtsRequestError(f"the openai engine has no voice '{voice}' (configured: {self._config.voices})")

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, connect=self._config.connect_timeout_s)
            )
        return self._http

    async def start(self, text: str, voice: str) -> Synthesis:
        config = self._config
        headers = {}
        key = os.environ.get(config.api_key_env) if config.api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        request = {"model": config.model, "input": text, "voice": voice, "response_format": config.response_format}
        url = f"{(config.base_url or '').rstrip('/')}/audio/speech"
        try:
            response = await self._session().post(url, json=request, headers=headers)
        except aiohttp.ClientError as exc:
            raise TtsFailed(f"cannot reach the speech server at {url}: {exc}") from exc
        if response.status != 200:
            async with response:
                raise TtsFailed(f"the speech server answered {response.status}: {await _reason(response)}")

        async def finished() -> None:
            return None

        async def close() -> None:
            response.close()

        body = _Body(response.content)
        try:
            pcm = await read_wav_format(body) if config.response_format == "wav" else PcmFormat(config.pcm_sample_rate)
        except BaseException:
            response.close()
            raise
        return Synthesis(pcm, body, finished, close)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()


class _Body:
    """A response body whose failures mid-stream are the engine's failures."""

    def __init__(self, content: aiohttp.StreamReader) -> None:
        self._content = content

    async def read(self, n: int = -1) -> bytes:
        try:
            return await self._content.read(n)
        except (aiohttp.ClientError, ConnectionError) as exc:
            raise TtsFailed(f"the speech server's audio broke off: {exc}") from exc

    async def readexactly(self, n: int) -> bytes:
        try:
            return await self._content.readexactly(n)
        except (aiohttp.ClientError, ConnectionError) as exc:
            raise TtsFailed(f"the speech server's audio broke off: {exc}") from exc


async def _reason(response: aiohttp.ClientResponse) -> str:
    """The error an OpenAI-style answer gives (`{"error": {"message": ...}}`), or its first words."""
    text = (await response.content.read(ERROR_BYTES)).decode("utf-8", "replace")
    try:
        error = json.loads(text).get("error")
    except (ValueError, AttributeError):
        return text.strip() or response.reason or ""
    if isinstance(error, dict):
        return str(error.get("message", error))
    return str(error)
