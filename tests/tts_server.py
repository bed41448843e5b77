"""A real OpenAI-compatible speech server for the tests: `POST /v1/audio/speech` answered with espeak-ng audio.

What it does depends on the voice asked for: `alloy` speaks the text; `hang` sends half a second
of it and then nothing; `broken` sends half a second and drops the connection; `refuse` answers
500 with an OpenAI-style error. It keeps the Authorization header of every request.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web

from benchmarks.kit.voices import espeak_wav

CHUNK_BYTES = 4410  # 0.1 s of 22.05 kHz s16
ESPEAK_RATE = 22050
WAV_HEADER = 44


@dataclass
class SpeechServer:
    url: str = ""
    authorizations: list[str | None] = field(default_factory=list)
    hanging: asyncio.Event = field(default_factory=asyncio.Event)


@asynccontextmanager
async def speech_server() -> AsyncIterator[SpeechServer]:
    server = SpeechServer()

    async def speech(request: web.Request) -> web.StreamResponse:
        server.authorizations.append(request.headers.get("Authorization"))
        body = await request.json()
        voice, fmt = body["voice"], body.get("response_format", "mp3")
        if voice == "refuse":
            return web.json_response({"error": {"message": "the model is overloaded"}}, status=500)
        wav = await asyncio.to_thread(espeak_wav, "en-us", body["input"])
        audio = wav if fmt == "wav" else wav[WAV_HEADER:]
        response = web.StreamResponse(headers={"Content-Type": "audio/wav" if fmt == "wav" else "audio/pcm"})
        await response.prepare(request)
        cut = len(audio) if voice == "alloy" else (WAV_HEADER if fmt == "wav" else 0) + ESPEAK_RATE  # 0.5 s
        for offset in range(0, cut, CHUNK_BYTES):
            await response.write(audio[offset : min(cut, offset + CHUNK_BYTES)])
            await asyncio.sleep(0.02)  # a server synthesizing faster than real time, but not at once
        if voice == "hang":
            server.hanging.set()
            await asyncio.Event().wait()  # until the client goes away
        if voice == "broken":
            assert request.transport is not None
            request.transport.abort()
            return response
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/v1/audio/speech", speech)
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.url = f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
    try:
        yield server
    finally:
        await runner.cleanup()
