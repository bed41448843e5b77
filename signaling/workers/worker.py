"""`lipstream edge-worker`: one edge behind a front (started by `pool`, never by hand).

It serves the edge's app on the unix socket the front gave it, reads its config on stdin (so
secrets such as the API key never appear in a process listing), names its sessions after its
index, trusts the client address its front forwards, and reports its sessions on a pipe.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from aiohttp import web

from lipstream.lifecycle import Shutdown
from media_server.config import EdgeConfig
from signaling.errors import Handler
from signaling.running import serving_edge, until_drained
from signaling.workers.proxy import FORWARDED_FOR
from signaling.workers.routing import session_prefix
from signaling.workers.status import report_sessions


@web.middleware
async def forwarded_for(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The front is the only peer on this socket: the client is the address it forwards."""
    client = request.headers.get(FORWARDED_FOR)
    return await handler(request.clone(remote=client) if client else request)


async def run_worker(config: EdgeConfig, index: int, socket: Path, status_fd: int) -> None:
    shutdown = Shutdown()
    async with serving_edge(config, session_prefix(index), [forwarded_for], access_log=False) as (edge, runner):
        await web.UnixSite(runner, str(socket)).start()
        reporter = asyncio.create_task(report_sessions(edge, status_fd), name="worker-reports")
        try:
            await until_drained(edge, shutdown)
        finally:
            reporter.cancel()


def _run(args: argparse.Namespace) -> int:
    config = EdgeConfig.model_validate_json(sys.stdin.read())
    for handler in logging.getLogger().handlers:
        handler.setFormatter(logging.Formatter(f"%(asctime)s %(levelname)s worker-{args.index} %(name)s: %(message)s"))
    asyncio.run(run_worker(config, args.index, args.socket, args.status_fd))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("edge-worker")  # no help: the front starts it, nobody else
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--socket", type=Path, required=True)
    parser.add_argument("--status-fd", type=int, required=True)
    parser.set_defaults(handler=_run)
