"""SDP exchange: lipstream's own `POST /offer` and WHEP (create, trickle ICE, delete)."""

from __future__ import annotations

import json

from aiohttp import web

from signaling.access import check_api_key, whep_session
from signaling.errors import http_error
from signaling.state import config_of, edge_of


async def offer(request: web.Request) -> web.Response:
    check_api_key(request)  # before reading any body
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise http_error(web.HTTPBadRequest, "the body must be JSON {sdp, type, avatar}") from exc
    if not isinstance(body, dict) or not isinstance(body.get("sdp"), str) or body.get("type") != "offer":
        raise http_error(web.HTTPBadRequest, 'expected JSON {"sdp": "...", "type": "offer", "avatar": "..."}')
    avatar = body.get("avatar") or config_of(request).avatars.default
    if not isinstance(avatar, str):
        raise http_error(web.HTTPBadRequest, "avatar must be a string")
    session, answer = await edge_of(request).create_session(body["sdp"], avatar)
    return web.json_response({"sdp": answer, "type": "answer", "session_id": session.id, "token": session.token})


async def whep_create(request: web.Request) -> web.Response:
    check_api_key(request)
    if request.content_type != "application/sdp":
        raise http_error(web.HTTPUnsupportedMediaType, "WHEP offers must be Content-Type: application/sdp")
    sdp = await request.text()
    session, answer = await edge_of(request).create_session(sdp, request.match_info["avatar"])
    return web.Response(
        status=201,
        text=answer,
        content_type="application/sdp",
        headers={
            "Location": f"/whep/sessions/{session.id}",
            "X-Session-Id": session.id,
            "X-Session-Token": session.token,
            "Link": f'</sessions/{session.id}>; rel="lipstream-control"',
        },
    )


async def whep_delete(request: web.Request) -> web.Response:
    session = whep_session(request)
    await edge_of(request).close_session(session.id)
    return web.Response(status=200)


async def whep_patch(request: web.Request) -> web.Response:
    """Trickle ICE: remote candidates in an SDP fragment (RFC 8840)."""
    session = whep_session(request)
    if request.content_type != "application/trickle-ice-sdpfrag":
        raise http_error(web.HTTPUnsupportedMediaType, "PATCH takes application/trickle-ice-sdpfrag")
    added = await edge_of(request).peer(session.id).add_candidates(await request.text())
    return web.Response(status=204, headers={"X-Candidates-Added": str(added)})
