"""Session control: state, end, interrupt, and speech as an uploaded audio file."""

from __future__ import annotations

import json

from aiohttp import BodyPartReader, web

from signaling.access import controlled_session
from signaling.errors import http_error
from signaling.state import config_of, edge_of


async def session_state(request: web.Request) -> web.Response:
    return web.json_response(controlled_session(request).state())


async def session_delete(request: web.Request) -> web.Response:
    session = controlled_session(request)
    await edge_of(request).close_session(session.id)
    return web.json_response({"closed": session.id})


async def interrupt(request: web.Request) -> web.Response:
    session = controlled_session(request)
    return web.json_response({"dropped_utterances": session.interrupt()})


def _too_large(limit: int, size: int, what: str) -> web.HTTPException:
    message = json.dumps({"error": f"{what} over the {limit / 2**20:g} MB limit"})
    return web.HTTPRequestEntityTooLarge(
        max_size=limit, actual_size=size, text=message, content_type="application/json"
    )


async def _speech_body(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit, request.content_length, "speech")
    try:
        if request.content_type.startswith("multipart/"):
            reader = await request.multipart()
            async for part in reader:
                if isinstance(part, BodyPartReader) and part.name in ("audio", "file"):
                    return bytes(await part.read())
            raise http_error(web.HTTPBadRequest, "multipart speech needs a part named 'audio' or 'file'")
        return await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise _too_large(limit, request.content_length or limit + 1, "speech") from exc


async def speech(request: web.Request) -> web.Response:
    session = controlled_session(request)
    config = config_of(request).sessions
    data = await _speech_body(request, int(config.max_speech_mb * 1024 * 1024))
    if not data:
        raise http_error(web.HTTPBadRequest, "no audio in the request body")
    utterance = await session.speak(data)
    return web.json_response(
        status=202,
        data={
            "utterance": utterance.id,
            "seconds": round(utterance.seconds, 3),
            "frames": utterance.frames,
            "starts_at_frame": utterance.start,
            "queued_seconds": round(session.queued_seconds(), 3),
        },
    )
