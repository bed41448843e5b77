"""The edge's HTTP surface: SDP exchange (own API and WHEP), session control, health, metrics, the demo page."""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from lipstream.paths import data_dir
from media_server.edge import Edge
from signaling.access import cors
from signaling.admission import SessionRateLimit
from signaling.control import interrupt, session_delete, session_state, speech
from signaling.errors import domain_errors
from signaling.events import session_events
from signaling.ice import ice_servers
from signaling.live import live_stream
from signaling.offers import offer, whep_create, whep_delete, whep_patch
from signaling.openapi import route as openapi_route
from signaling.say import say, voices
from signaling.state import CONFIG_KEY, EDGE_KEY, SESSION_RATE_KEY, config_of, edge_of


async def avatars(request: web.Request) -> web.Response:
    return web.json_response(
        {"avatars": edge_of(request).catalogue.names(), "default": config_of(request).avatars.default}
    )


async def health(request: web.Request) -> web.Response:
    """200 while sessions can move lips; 503 (with the reason) while no inference server answers, or draining."""
    edge = edge_of(request)
    monitor = edge.inference_health
    reachable = await monitor.current()
    inference: dict[str, object] = {"reachable": reachable, "target": edge.inference.target}
    if not reachable:
        inference["reason"] = monitor.reason
    body = {
        "status": "draining" if edge.draining else "ok" if reachable else "degraded",
        "inference": inference,
        "sessions": len(edge.sessions),
        "max_sessions": edge.config.sessions.max_sessions,
        "late_frame_pct": round(edge.load.late_pct(), 1),
    }
    return web.json_response(body, status=200 if body["status"] == "ok" else 503)


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(edge_of(request).metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(data_dir("web_client") / "index.html")


def create_app(edge: Edge, middlewares: Sequence[Middleware] = ()) -> web.Application:
    """The edge's app; `middlewares` go first (a worker's trust in its front's forwarded address)."""
    config = edge.config
    max_body = int(config.sessions.max_speech_mb * 1024 * 1024) + 64 * 1024
    app = web.Application(middlewares=[*middlewares, cors, domain_errors], client_max_size=max_body)
    app[EDGE_KEY] = edge
    app[CONFIG_KEY] = config
    app[SESSION_RATE_KEY] = SessionRateLimit(config.http.sessions_per_minute, config.http.session_burst)
    app.router.add_get("/", index)
    app.router.add_static("/static", data_dir("web_client"), show_index=False)
    app.router.add_get("/ice-servers", ice_servers)
    app.router.add_post("/offer", offer)
    app.router.add_post("/whep/{avatar}", whep_create)
    app.router.add_delete("/whep/sessions/{session_id}", whep_delete)
    app.router.add_patch("/whep/sessions/{session_id}", whep_patch)
    app.router.add_get("/sessions/{session_id}", session_state)
    app.router.add_delete("/sessions/{session_id}", session_delete)
    app.router.add_post("/sessions/{session_id}/speech", speech)
    app.router.add_post("/sessions/{session_id}/interrupt", interrupt)
    app.router.add_post("/sessions/{session_id}/say", say)
    app.router.add_get("/sessions/{session_id}/stream", live_stream)
    app.router.add_get("/sessions/{session_id}/events", session_events)
    app.router.add_get("/avatars", avatars)
    app.router.add_get("/voices", voices)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    app.router.add_routes([openapi_route])

    async def shutdown(app: web.Application) -> None:
        await edge.close()

    app.on_shutdown.append(shutdown)
    return app
