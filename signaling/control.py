"""Session control: state, end, interrupt, and speech as an uploaded audio file."""

from __future__ import annotations

from aiohttp import BodyPartReader, web

from signaling.access import controlled_session
from signaling.bodies import read_body, too_large
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


async def _multipart_audio(request: web.Request, limit: int) -> bytes:
    """The part named `audio` (or `file`) of a multipart body, read within `limit`."""
    try:
        reader = await request.multipart()
        async for part in reader:
            if isinstance(part, BodyPartReader) and part.name in ("audio", "file"):
                data = bytearray()
                while chunk := await part.read_chunk():
                    data += chunk
                    if len(data) > limit:
                        raise too_large(limit, len(data), "speech")
                return bytes(data)
    except web.HTTPException:
        raise
    except Exception as exc:  # noqa: BLE001 - aiohttp's multipart parser raises several types for bad input
        raise http_error(web.HTTPBadRequest, f"malformed multipart body: {exc}") from exc
    raise http_error(web.HTTPBadRequest, "multipart speech needs a part named 'audio' or 'file'")


async def speech(request: web.Request) -> web.Response:
    session = controlled_session(request)
    config = config_of(request).sessions
    limit = int(config.max_speech_mb * 1024 * 1024)
    if request.content_type.startswith("multipart/"):
        data = await _multipart_audio(request, limit)
    else:
        data = await read_body(request, limit, "speech")
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
            **inference_warning(request),
        },
    )


def inference_warning(request: web.Request) -> dict[str, str]:
    """Speech accepted while no inference server answers plays with a still mouth: say so."""
    health = edge_of(request).inference_health
    if health.reachable:
        return {}
    return {"warning": f"{health.reason}: the avatar speaks with a still mouth until it is back"}
