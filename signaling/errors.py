"""Errors as HTTP answers: JSON `{"error": ...}`, and one table from media-core errors to statuses."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from aiohttp import web

from media_server.avatars.catalogue import AvatarNotFound
from media_server.avatars.format import AvatarError
from media_server.edge import AvatarUnusable, SessionLimit, SessionNotFound
from media_server.session.speech_input import SpeechInterrupted
from media_server.speech.audio import AudioDecodeError, AudioTooLongError
from media_server.speech.timeline import SpeechQueueFull
from media_server.tts.engine import TextTooLong, TtsBusy, TtsFailed, TtsRequestError, TtsTimeout, TtsUnavailable
from media_server.webrtc.peer import BadCandidate, BadOffer
from media_server.webrtc.port_range import IcePortsExhausted

RETRY_AFTER_S = 5
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# What the media core raises, as the HTTP status a client gets (with the message as JSON).
ERROR_STATUS: dict[type[Exception], int] = {
    BadOffer: 400,
    BadCandidate: 400,
    AvatarNotFound: 404,
    SessionNotFound: 404,
    SpeechInterrupted: 409,
    AudioTooLongError: 413,
    AvatarUnusable: 422,
    AvatarError: 422,
    AudioDecodeError: 422,
    SpeechQueueFull: 429,
    SessionLimit: 503,
    IcePortsExhausted: 503,
    TtsRequestError: 400,
    TextTooLong: 413,
    TtsTimeout: 504,  # before its base class: the first match wins
    TtsFailed: 502,
    TtsUnavailable: 503,
    TtsBusy: 503,
}


def http_error(
    status: type[web.HTTPException], message: str, headers: dict[str, str] | None = None
) -> web.HTTPException:
    """A JSON error body {"error": message}."""
    return status(text=json.dumps({"error": message}), content_type="application/json", headers=headers)


@web.middleware
async def domain_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except tuple(ERROR_STATUS) as exc:
        status = next(code for kind, code in ERROR_STATUS.items() if isinstance(exc, kind))
        if isinstance(exc, SessionLimit | IcePortsExhausted):  # full for now: come back later
            return web.json_response(
                {"error": f"{exc}, retry in {RETRY_AFTER_S} s"},
                status=status,
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
        return web.json_response({"error": str(exc)}, status=status)
