"""An edge's HTTP app, running: the bundled avatar provided, the default avatar warmed, served until drained.

`lipstream edge` serves it on a TCP port; an edge worker (`signaling.workers`) on a private socket
behind a front. Both drain the same way on SIGTERM: no new sessions, the running ones go on for up
to `sessions.drain_timeout_s`, then whatever is left is closed.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from aiohttp import web
from aiohttp.typedefs import Middleware

from lipstream.lifecycle import Shutdown
from media_server.avatars.catalogue import bundled_avatar_ready
from media_server.config import EdgeConfig
from media_server.edge import Edge
from signaling.access_log import RedactingAccessLogger
from signaling.app import create_app

log = logging.getLogger(__name__)


async def _warm_default_avatar(edge: Edge, name: str) -> None:
    try:
        await edge.load_avatar(name)
    except Exception as exc:  # noqa: BLE001 - a broken default avatar is reported per session too
        log.error("cannot load the default avatar '%s': %s", name, exc)
    # Everything alive now (libraries, the avatar) lives as long as the process: keep it out
    # of the collector, whose full passes over it otherwise stall every session at once.
    gc.collect()
    gc.freeze()


async def provide_bundled_avatar() -> None:
    """Generate the bundled avatar at the first start; a failure leaves the edge serving the others."""
    if bundled_avatar_ready():
        return
    # Imported here: the builder (face detection, scikit-image) is needed this once, never to serve.
    from media_server.avatars.bundled import ensure_bundled_avatar

    try:
        await asyncio.get_running_loop().run_in_executor(None, ensure_bundled_avatar)
    except Exception as exc:  # noqa: BLE001 - sessions on this avatar get a 422 that says why
        log.error("cannot build the bundled avatar: %s", exc)


@asynccontextmanager
async def serving_edge(
    config: EdgeConfig, session_prefix: str = "", middlewares: Sequence[Middleware] = (), access_log: bool = True
) -> AsyncIterator[tuple[Edge, web.AppRunner]]:
    """An edge and its app's runner, set up (add a site to it); cleaned up, every session closed, on exit."""
    await provide_bundled_avatar()
    edge = Edge(config, session_prefix)
    edge.start()
    app = create_app(edge, middlewares)
    if access_log:
        runner = web.AppRunner(app, handle_signals=False, access_log_class=RedactingAccessLogger)
    else:
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    warm = asyncio.create_task(_warm_default_avatar(edge, config.avatars.default))
    try:
        yield edge, runner
    finally:
        warm.cancel()
        await runner.cleanup()


async def until_drained(edge: Edge, shutdown: Shutdown) -> None:
    """Serve until a signal, then drain: up to `drain_timeout_s`, or until a second signal."""
    await shutdown.drain.wait()
    await edge.drain(edge.config.sessions.drain_timeout_s, shutdown.now)


async def run_edge(config: EdgeConfig, shutdown: Shutdown) -> None:
    async with serving_edge(config) as (edge, runner):
        await web.TCPSite(runner, config.http.host, config.http.port).start()
        log.info(
            "edge on http://%s:%d (inference: %s over %s)",
            config.http.host,
            config.http.port,
            ", ".join(config.inference.targets),
            config.inference.protocol,
        )
        await until_drained(edge, shutdown)
