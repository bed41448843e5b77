"""The edge's HTTP surface: SDP exchange (own API and WHEP), session control, health, metrics, the demo page."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import WSMsgType, web
from aiortc.sdp import candidate_from_sdp
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from lipstream.paths import data_dir
from media_server.audio import AudioDecodeError, AudioTooLongError
from media_server.edge import AvatarNotFound, AvatarUnusable, BadOffer, Edge, SessionLimit
from media_server.session import Session, SpeechInterrupted
from media_server.speech import QueueFullError
from signaling.config import EdgeConfig

log = logging.getLogger(__name__)

EDGE_KEY = web.AppKey("edge", Edge)
CONFIG_KEY = web.AppKey("config", EdgeConfig)
RETRY_AFTER_S = 5
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: type[web.HTTPException], message: str, headers: dict[str, str] | None = None,
           **details: int) -> web.HTTPException:
    """A JSON error body {"error": message}; `details` are extra constructor fields (e.g. 413's sizes)."""
    return status(text=json.dumps({"error": message}), content_type="application/json", headers=headers, **details)


# -- middleware ------------------------------------------------------------------
@web.middleware
async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Only the configured origins may call the API from a browser (none by default)."""
    origin = request.headers.get("Origin")
    allowed = origin is not None and origin in request.app[CONFIG_KEY].http.cors_origins
    if request.method == "OPTIONS" and allowed:
        response: web.StreamResponse = web.Response(status=204)
    else:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            response = exc
    if allowed:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, PATCH, DELETE, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
        response.headers["Access-Control-Expose-Headers"] = "Location, X-Session-Id, X-Session-Token, Retry-After"
        response.headers["Vary"] = "Origin"
    if isinstance(response, web.HTTPException):
        raise response
    return response


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.query.get("token")


def _presents(request: web.Request, secret: str) -> bool:
    """Whether the caller's bearer token is `secret` (compared in constant time)."""
    return hmac.compare_digest((_bearer(request) or "").encode(), secret.encode())


def _check_api_key(request: web.Request) -> None:
    key = request.app[CONFIG_KEY].http.api_key
    if key and not _presents(request, key):
        raise _error(web.HTTPUnauthorized, "a valid API key is needed to create sessions",
                     {"WWW-Authenticate": "Bearer"})


def _named_session(request: web.Request) -> Session:
    session = request.app[EDGE_KEY].sessions.get(request.match_info["session_id"])
    if session is None:
        raise _error(web.HTTPNotFound, "no such session")
    return session


def _session(request: web.Request) -> Session:
    """The session named in the URL, if the caller holds its token."""
    session = _named_session(request)
    if not _presents(request, session.token):
        raise _error(web.HTTPForbidden, "this session's token is needed")
    return session


# What the media core raises, as the HTTP status a client gets (with the message as JSON).
ERROR_STATUS: dict[type[Exception], int] = {
    BadOffer: 400,
    AvatarNotFound: 404,
    SpeechInterrupted: 409,
    AudioTooLongError: 413,
    AvatarUnusable: 422,
    AudioDecodeError: 422,
    QueueFullError: 429,
    SessionLimit: 503,
}


@web.middleware
async def domain_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except tuple(ERROR_STATUS) as exc:
        status = next(code for kind, code in ERROR_STATUS.items() if isinstance(exc, kind))
        if isinstance(exc, SessionLimit):
            return web.json_response({"error": f"{exc}, retry in {RETRY_AFTER_S} s"}, status=status,
                                     headers={"Retry-After": str(RETRY_AFTER_S)})
        return web.json_response({"error": str(exc)}, status=status)


# -- SDP exchange -------------------------------------------------------------------
async def offer(request: web.Request) -> web.Response:
    _check_api_key(request)  # before reading any body
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _error(web.HTTPBadRequest, "the body must be JSON {sdp, type, avatar}") from exc
    if not isinstance(body, dict) or not isinstance(body.get("sdp"), str) or body.get("type") != "offer":
        raise _error(web.HTTPBadRequest, "expected JSON {\"sdp\": \"...\", \"type\": \"offer\", \"avatar\": \"...\"}")
    avatar = body.get("avatar") or request.app[CONFIG_KEY].avatars.default
    if not isinstance(avatar, str):
        raise _error(web.HTTPBadRequest, "avatar must be a string")
    session, answer = await request.app[EDGE_KEY].create_session(body["sdp"], avatar)
    return web.json_response({"sdp": answer, "type": "answer", "session_id": session.id, "token": session.token})


async def whep_create(request: web.Request) -> web.Response:
    _check_api_key(request)
    if request.content_type != "application/sdp":
        raise _error(web.HTTPUnsupportedMediaType, "WHEP offers must be Content-Type: application/sdp")
    sdp = await request.text()
    session, answer = await request.app[EDGE_KEY].create_session(sdp, request.match_info["avatar"])
    location = f"/whep/sessions/{session.id}"
    return web.Response(status=201, text=answer, content_type="application/sdp", headers={
        "Location": location,
        "X-Session-Id": session.id,
        "X-Session-Token": session.token,
        "Link": f'</sessions/{session.id}>; rel="lipstream-control"',
    })


def _whep_session(request: web.Request) -> Session:
    """The WHEP resource URL is unguessable; with an API key set, the key (or the session token) is needed too."""
    session = _named_session(request)
    key = request.app[CONFIG_KEY].http.api_key
    if key and not (_presents(request, key) or _presents(request, session.token)):
        raise _error(web.HTTPForbidden, "the API key or the session token is needed")
    return session


async def whep_delete(request: web.Request) -> web.Response:
    session = _whep_session(request)
    await request.app[EDGE_KEY].close_session(session.id)
    return web.Response(status=200)


async def whep_patch(request: web.Request) -> web.Response:
    """Trickle ICE: remote candidates in an SDP fragment (RFC 8840)."""
    session = _whep_session(request)
    if request.content_type != "application/trickle-ice-sdpfrag":
        raise _error(web.HTTPUnsupportedMediaType, "PATCH takes application/trickle-ice-sdpfrag")
    pc = request.app[EDGE_KEY].peer(session.id)
    mid = None
    added = 0
    for line in (await request.text()).splitlines():
        if line.startswith("a=mid:"):
            mid = line[6:].strip()
        elif line.startswith("a=candidate:"):
            try:
                candidate = candidate_from_sdp(line[2:].split(":", 1)[1])
            except (ValueError, IndexError) as exc:
                raise _error(web.HTTPBadRequest, f"bad candidate line: {line}") from exc
            candidate.sdpMid = mid
            try:
                await pc.addIceCandidate(candidate)
            except ValueError as exc:
                raise _error(web.HTTPBadRequest, f"cannot add the candidate: {exc}") from exc
            added += 1
    return web.Response(status=204, headers={"X-Candidates-Added": str(added)})


# -- session control -------------------------------------------------------------------
async def session_state(request: web.Request) -> web.Response:
    return web.json_response(_session(request).state())


async def session_delete(request: web.Request) -> web.Response:
    session = _session(request)
    await request.app[EDGE_KEY].close_session(session.id)
    return web.json_response({"closed": session.id})


async def interrupt(request: web.Request) -> web.Response:
    session = _session(request)
    return web.json_response({"dropped_utterances": session.interrupt()})


def _too_large(limit: int, size: int, what: str) -> web.HTTPException:
    return _error(web.HTTPRequestEntityTooLarge, f"{what} over the {limit / 2**20:g} MB limit",
                  max_size=limit, actual_size=size)


async def _speech_body(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit, request.content_length, "speech")
    try:
        if request.content_type.startswith("multipart/"):
            reader = await request.multipart()
            async for part in reader:
                if part.name in ("audio", "file"):
                    return bytes(await part.read())
            raise _error(web.HTTPBadRequest, "multipart speech needs a part named 'audio' or 'file'")
        return await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise _too_large(limit, request.content_length or limit + 1, "speech") from exc


async def speech(request: web.Request) -> web.Response:
    session = _session(request)
    config = request.app[CONFIG_KEY].sessions
    data = await _speech_body(request, int(config.max_speech_mb * 1024 * 1024))
    if not data:
        raise _error(web.HTTPBadRequest, "no audio in the request body")
    utterance = await session.speak(data)
    return web.json_response(status=202, data={
        "utterance": utterance.id, "seconds": round(utterance.seconds, 3), "frames": utterance.frames,
        "starts_at_frame": utterance.start, "queued_seconds": round(session.timeline.queued_seconds(), 3),
    })


async def live_stream(request: web.Request) -> web.WebSocketResponse:
    """Live PCM: a JSON header {sample_rate, format, channels}, binary chunks, {"type": "end"} per utterance."""
    session = _session(request)
    limit = request.app[CONFIG_KEY].sessions.live_chunk_max_kb * 1024
    ws = web.WebSocketResponse(max_msg_size=limit, heartbeat=20)
    await ws.prepare(request)
    feed = None

    async def close_with_session() -> None:
        await session.ended.wait()
        await ws.close(message=b"session ended")

    watcher = asyncio.create_task(close_with_session())
    try:
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                try:
                    data = json.loads(message.data)
                except json.JSONDecodeError:
                    await ws.send_json({"type": "error", "message": "text messages must be JSON"})
                    continue
                if feed is None:
                    try:
                        feed = session.live_feed(int(data["sample_rate"]), data.get("format", "s16le"),
                                                 int(data.get("channels", 1)))
                    except (KeyError, TypeError, ValueError) as exc:
                        await ws.send_json({"type": "error", "message": f"bad stream header: {exc}"})
                        await ws.close()
                        break
                    await ws.send_json({"type": "ready"})
                elif data.get("type") == "end":
                    utterance = await feed.end()
                    await ws.send_json({"type": "ended", "utterance": utterance.id if utterance else None})
            elif message.type == WSMsgType.BINARY:
                if feed is None:
                    await ws.send_json({"type": "error", "message": "send the JSON header first"})
                    await ws.close()
                    break
                try:
                    await feed.push(message.data)
                except QueueFullError as exc:
                    await ws.send_json({"type": "error", "message": str(exc)})
                except AudioTooLongError as exc:
                    await ws.send_json({"type": "error", "message": str(exc)})
                    await ws.close()
                    break
    finally:
        watcher.cancel()
        if feed is not None and feed.active and not session.closed:
            await feed.end()
    return ws


# -- service endpoints -------------------------------------------------------------------
async def avatars(request: web.Request) -> web.Response:
    edge = request.app[EDGE_KEY]
    return web.json_response({"avatars": edge.avatar_names(), "default": request.app[CONFIG_KEY].avatars.default})


async def health(request: web.Request) -> web.Response:
    edge = request.app[EDGE_KEY]
    reachable = await edge.inference.reachable()
    return web.json_response({
        "status": "ok" if reachable else "degraded",
        "inference": {"reachable": reachable, "target": edge.inference.target},
        "sessions": len(edge.sessions),
        "max_sessions": edge.settings.sessions.max_sessions,
    })


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[EDGE_KEY].metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(data_dir("web_client") / "index.html")


def create_app(config: EdgeConfig, edge: Edge) -> web.Application:
    max_body = int(config.sessions.max_speech_mb * 1024 * 1024) + 64 * 1024
    app = web.Application(middlewares=[cors, domain_errors], client_max_size=max_body)
    app[EDGE_KEY] = edge
    app[CONFIG_KEY] = config
    app.router.add_get("/", index)
    app.router.add_static("/static", data_dir("web_client"), show_index=False)
    app.router.add_post("/offer", offer)
    app.router.add_post("/whep/{avatar}", whep_create)
    app.router.add_delete("/whep/sessions/{session_id}", whep_delete)
    app.router.add_patch("/whep/sessions/{session_id}", whep_patch)
    app.router.add_get("/sessions/{session_id}", session_state)
    app.router.add_delete("/sessions/{session_id}", session_delete)
    app.router.add_post("/sessions/{session_id}/speech", speech)
    app.router.add_post("/sessions/{session_id}/interrupt", interrupt)
    app.router.add_get("/sessions/{session_id}/stream", live_stream)
    app.router.add_get("/avatars", avatars)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)

    async def shutdown(app: web.Application) -> None:
        await edge.close()

    app.on_shutdown.append(shutdown)
    return app
