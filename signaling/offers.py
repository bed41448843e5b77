"""SDP exchange: lipstream's own `POST /offer` and WHEP (create, trickle ICE, delete)."""

from __future__ import annotations

import math

from aiohttp import web
from multidict import CIMultiDict

from signaling.access import check_api_key, whep_session
from signaling.bodies import read_json, read_text, require_type
from signaling.errors import http_error
from signaling.state import SESSION_RATE_KEY, config_of, edge_of
from signaling.urls import control, session_urls, whep_resource

JSON_SLACK = 4096  # room for the JSON around the SDP
TRICKLE_LIMIT = 64 * 1024


def admit_offer(request: web.Request, content_type: str, what: str) -> None:
    """What a new session's request passes before its body is read: the API key, its type, the client's rate."""
    check_api_key(request)
    require_type(request, content_type, what)
    _admit_client(request)


def _admit_client(request: web.Request) -> None:
    """429 with Retry-After for a client address opening sessions faster than allowed."""
    wait_s = request.app[SESSION_RATE_KEY].take(request.remote or "unknown")
    if wait_s:
        retry = str(max(1, math.ceil(wait_s)))
        raise http_error(web.HTTPTooManyRequests, f"too many new sessions, retry in {retry} s", {"Retry-After": retry})


def _sdp_limit(request: web.Request) -> int:
    return config_of(request).http.max_sdp_kb * 1024


async def offer(request: web.Request) -> web.Response:
    admit_offer(request, "application/json", "an offer")
    body = await read_json(request, _sdp_limit(request) + JSON_SLACK, "the offer")
    if not isinstance(body, dict) or not isinstance(body.get("sdp"), str) or body.get("type") != "offer":
        raise http_error(web.HTTPBadRequest, 'expected JSON {"sdp": "...", "type": "offer", "avatar": "..."}')
    avatar = body.get("avatar") or config_of(request).avatars.default
    if not isinstance(avatar, str):
        raise http_error(web.HTTPBadRequest, "avatar must be a string")
    session, answer, _ = await edge_of(request).create_session(body["sdp"], avatar)
    answered = {"sdp": answer, "type": "answer", "session_id": session.id, "token": session.token}
    return web.json_response({**answered, "urls": session_urls(config_of(request).http, session.id)})


async def whep_create(request: web.Request) -> web.Response:
    admit_offer(request, "application/sdp", "WHEP offers")
    sdp = await read_text(request, _sdp_limit(request), "the offer")
    session, answer, servers = await edge_of(request).create_session(sdp, request.match_info["avatar"])
    http = config_of(request).http
    headers = CIMultiDict(
        {
            "Location": whep_resource(http, session.id),
            "X-Session-Id": session.id,
            "X-Session-Token": session.token,
            "Link": f'<{control(http, session.id)}>; rel="lipstream-control"',
        }
    )
    for server in servers:  # RFC 9725's ICE server links: TURN credentials minted for this session
        for link in server.links():
            headers.add("Link", link)
    return web.Response(status=201, text=answer, content_type="application/sdp", headers=headers)


async def whep_delete(request: web.Request) -> web.Response:
    session = whep_session(request)
    await edge_of(request).close_session(session.id)
    return web.Response(status=200)


async def whep_patch(request: web.Request) -> web.Response:
    """Trickle ICE: remote candidates in an SDP fragment (RFC 8840)."""
    session = whep_session(request)
    require_type(request, "application/trickle-ice-sdpfrag", "PATCH")
    fragment = await read_text(request, TRICKLE_LIMIT, "the candidates")
    limit = config_of(request).http.max_trickle_candidates
    added = await edge_of(request).peer(session.id).add_candidates(fragment, limit)
    return web.Response(status=204, headers={"X-Candidates-Added": str(added)})
