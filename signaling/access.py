"""Who may call what: CORS for browsers, the API key for new sessions, a session's token for its control."""

from __future__ import annotations

import hmac

from aiohttp import web

from media_server.session.session import Session
from signaling.errors import Handler, http_error
from signaling.state import config_of, edge_of


@web.middleware
async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Only the configured origins may call the API from a browser (none by default)."""
    origin = request.headers.get("Origin")
    allowed = origin is not None and origin in config_of(request).http.cors_origins
    if request.method == "OPTIONS" and allowed:
        response: web.StreamResponse = web.Response(status=204)
    else:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            response = exc
    if allowed and origin is not None:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, PATCH, DELETE, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
        response.headers["Access-Control-Expose-Headers"] = "Location, Link, X-Session-Id, X-Session-Token, Retry-After"
        response.headers["Vary"] = "Origin"
    if isinstance(response, web.HTTPException):
        raise response
    return response


def _bearer(request: web.Request) -> str | None:
    """The Authorization bearer token; `?token=` only on a WebSocket upgrade, which browsers cannot give headers."""
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    if request.headers.get("Upgrade", "").lower() == "websocket":
        return request.query.get("token")
    return None


def presents(request: web.Request, secret: str) -> bool:
    """Whether the caller's bearer token is `secret` (compared in constant time)."""
    # Header bytes that are not UTF-8 arrive as surrogates; they never match, and never raise.
    presented = (_bearer(request) or "").encode("utf-8", "surrogateescape")
    return hmac.compare_digest(presented, secret.encode("utf-8", "surrogateescape"))


def check_api_key(request: web.Request) -> None:
    key = config_of(request).http.api_key
    if key and not presents(request, key):
        raise http_error(
            web.HTTPUnauthorized, "a valid API key is needed to create sessions", {"WWW-Authenticate": "Bearer"}
        )


def named_session(request: web.Request) -> Session:
    """The session named in the URL (404 if none), with no check of the caller."""
    return edge_of(request).session(request.match_info["session_id"])


def controlled_session(request: web.Request) -> Session:
    """The session named in the URL, if the caller holds its token."""
    session = named_session(request)
    if not presents(request, session.token):
        raise http_error(web.HTTPForbidden, "this session's token is needed")
    return session


def whep_session(request: web.Request) -> Session:
    """A WHEP resource answers to the session's token (X-Session-Token) or the API key a player authenticated with."""
    session = named_session(request)
    key = config_of(request).http.api_key
    if not (presents(request, session.token) or (key and presents(request, key))):
        raise http_error(web.HTTPForbidden, "the session token (or the API key) is needed")
    return session
