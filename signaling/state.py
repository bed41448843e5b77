"""What every handler reaches through the application: the edge and its config."""

from __future__ import annotations

from aiohttp import web

from media_server.config import EdgeConfig
from media_server.edge import Edge
from signaling.admission import SessionRateLimit

EDGE_KEY = web.AppKey("edge", Edge)
CONFIG_KEY = web.AppKey("config", EdgeConfig)
SESSION_RATE_KEY = web.AppKey("session_rate", SessionRateLimit)


def edge_of(request: web.Request) -> Edge:
    return request.app[EDGE_KEY]


def config_of(request: web.Request) -> EdgeConfig:
    return request.app[CONFIG_KEY]
