"""The front: the public port. New sessions are admitted here and sent to the least-loaded worker;
every other request goes to the worker that owns its session, or to any worker (`proxy`)."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from lipstream.lifecycle import Shutdown
from media_server.config import EdgeConfig
from media_server.edge import SessionLimit, SessionNotFound
from signaling.access import cors
from signaling.access_log import RedactingAccessLogger
from signaling.admission import SessionRateLimit
from signaling.errors import domain_errors
from signaling.offers import admit_offer
from signaling.running import provide_bundled_avatar
from signaling.state import CONFIG_KEY, SESSION_RATE_KEY, config_of
from signaling.workers import aggregate
from signaling.workers.pool import Worker, WorkerPool
from signaling.workers.proxy import WorkerGone, forward_http, forward_websocket, is_websocket
from signaling.workers.routing import owner_of, session_in

log = logging.getLogger(__name__)

POOL_KEY = web.AppKey("pool", WorkerPool)


async def _forward(request: web.Request, worker: Worker) -> web.StreamResponse:
    if worker.http is None:
        raise WorkerGone(f"worker {worker.index} is down")
    if is_websocket(request):
        limit = config_of(request).sessions.live_chunk_max_kb * 1024
        return await forward_websocket(request, worker.http, limit)
    return await forward_http(request, worker.http)


async def _new_session(request: web.Request, content_type: str, what: str) -> web.StreamResponse:
    admit_offer(request, content_type, what)
    worker = request.app[POOL_KEY].for_new_session()
    worker.creating += 1
    try:
        response = await _forward(request, worker)
    except WorkerGone as exc:
        raise SessionLimit(f"the edge worker went away: {exc}") from exc
    finally:
        worker.creating -= 1
    if 200 <= response.status < 300:
        worker.forwarded += 1
    return response


async def offer(request: web.Request) -> web.StreamResponse:
    return await _new_session(request, "application/json", "an offer")


async def whep_create(request: web.Request) -> web.StreamResponse:
    return await _new_session(request, "application/sdp", "WHEP offers")


async def to_worker(request: web.Request) -> web.StreamResponse:
    """A session's request to the worker that owns it (404 when it is gone); any other to any worker."""
    pool = request.app[POOL_KEY]
    session = session_in(request.path)
    worker = pool.owner(owner_of(session)) if session is not None else pool.any()
    gone = SessionNotFound.on_edge(config_of(request).http.public_url)
    if worker is None and session is not None:
        raise gone
    if worker is None:
        raise SessionLimit("no edge worker is up")
    try:
        return await _forward(request, worker)
    except WorkerGone as exc:
        if session is not None:  # its worker died with it
            raise gone from exc
        raise SessionLimit(f"the edge worker went away: {exc}") from exc


async def health(request: web.Request) -> web.Response:
    status, body = await aggregate.health(request.app[POOL_KEY])
    return web.json_response(body, status=status)


async def metrics(request: web.Request) -> web.Response:
    body = await aggregate.metrics(request.app[POOL_KEY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def front_app(config: EdgeConfig, pool: WorkerPool) -> web.Application:
    app = web.Application(middlewares=[cors, domain_errors])
    app[CONFIG_KEY] = config
    app[SESSION_RATE_KEY] = SessionRateLimit(config.http.sessions_per_minute, config.http.session_burst)
    app[POOL_KEY] = pool
    app.router.add_post("/offer", offer)
    app.router.add_post("/whep/{avatar}", whep_create)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    app.router.add_route("*", "/{tail:.*}", to_worker)
    return app


async def run_front(config: EdgeConfig, workers: int, shutdown: Shutdown) -> None:
    """`workers` edge workers behind the public port until a signal; then they drain, and the front after them."""
    await provide_bundled_avatar()  # once, before the workers would all build it
    with tempfile.TemporaryDirectory(prefix="lipstream-workers-") as sockets:
        pool = WorkerPool(config, workers, Path(sockets))
        try:
            await pool.start()
            runner = web.AppRunner(
                front_app(config, pool), handle_signals=False, access_log_class=RedactingAccessLogger
            )
            await runner.setup()
            try:
                await web.TCPSite(runner, config.http.host, config.http.port).start()
                log.info(
                    "edge on http://%s:%d: %d workers (inference: %s)",
                    config.http.host,
                    config.http.port,
                    workers,
                    ", ".join(config.inference.targets),
                )
                await shutdown.drain.wait()
                await pool.drain(shutdown.now)
            finally:
                await runner.cleanup()
        finally:
            await pool.close()
