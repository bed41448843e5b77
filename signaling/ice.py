"""`GET /ice-servers`: the STUN and TURN servers a client should use, before it makes its offer.

The `/offer` flow needs them first (the browser gathers its candidates before it sends the
offer); WHEP's answer carries them as `Link` headers instead (`signaling.offers`). TURN
credentials are minted for each call and expire after `http.turn.ttl_s`; where creating sessions
needs the API key, so does this (TURN credentials are a relay anyone could use).
"""

from __future__ import annotations

import secrets

from aiohttp import web

from signaling.access import check_api_key
from signaling.state import config_of, edge_of


async def ice_servers(request: web.Request) -> web.Response:
    check_api_key(request)
    servers = edge_of(request).network.servers("client-" + secrets.token_hex(6))
    body = {"iceServers": [server.as_json() for server in servers], "ttl_s": config_of(request).http.turn.ttl_s}
    return web.json_response(body, headers={"Cache-Control": "no-store"})
