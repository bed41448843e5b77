"""Text to speech: `POST /sessions/{id}/say` speaks text through an engine; `GET /voices` lists them."""

from __future__ import annotations

from aiohttp import web

from signaling.access import controlled_session
from signaling.bodies import read_json, require_type
from signaling.control import inference_warning
from signaling.errors import http_error
from signaling.state import config_of, edge_of

JSON_SLACK = 4096  # room for the JSON around the text (escapes, voice, engine)


async def voices(request: web.Request) -> web.Response:
    return web.json_response(await edge_of(request).tts.voices())


async def say(request: web.Request) -> web.Response:
    session = controlled_session(request)
    require_type(request, "application/json", "a say request")
    tts = edge_of(request).tts
    body = await read_json(request, 4 * config_of(request).tts.max_chars + JSON_SLACK, "the say request")
    if not isinstance(body, dict):
        raise http_error(web.HTTPBadRequest, 'expected JSON {"text": "...", "voice": "...", "engine": "..."}')
    voice, engine = body.get("voice"), body.get("engine")
    if not isinstance(voice, str | None) or not isinstance(engine, str | None):
        raise http_error(web.HTTPBadRequest, "voice and engine must be strings")
    text = tts.check_text(body.get("text"))
    said = await session.say(tts, text, voice or None, engine or None)
    utterance = said.utterance
    return web.json_response(
        status=202,
        data={
            "utterance": utterance.id,
            "engine": said.engine,
            "voice": said.voice,
            "starts_at_frame": utterance.start,
            "queued_seconds": round(session.queued_seconds(), 3),
            **inference_warning(request),
        },
    )
