"""`lipstream edge` and `lipstream serve`."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import sys
from pathlib import Path

from aiohttp import web

from lipstream.lifecycle import free_port, stop_on_signals
from media_server.avatars.catalogue import bundled_avatar_ready
from media_server.config import EdgeConfig, load_edge_config
from media_server.edge import Edge
from signaling.access_log import RedactingAccessLogger
from signaling.app import create_app
from signaling.inference_child import InferenceChild, InferenceChildFailed

log = logging.getLogger(__name__)

INFERENCE_START_TIMEOUT_S = 300.0  # the first start generates the built-in model
INFERENCE_HUNG_S = 10.0  # longer than a freeze the service survives (a 5 s stop costs moving lips, not a restart)


async def _warm_default_avatar(edge: Edge, name: str) -> None:
    try:
        await edge.load_avatar(name)
    except Exception as exc:  # noqa: BLE001 - a broken default avatar is reported per session too
        log.error("cannot load the default avatar '%s': %s", name, exc)
    # Everything alive now (libraries, the avatar) lives as long as the process: keep it out
    # of the collector, whose full passes over it otherwise stall every session at once.
    gc.collect()
    gc.freeze()


async def _provide_bundled_avatar() -> None:
    """Generate the bundled avatar at the first start; a failure leaves the edge serving the others."""
    if bundled_avatar_ready():
        return
    # Imported here: the builder (face detection, scikit-image) is needed this once, never to serve.
    from media_server.avatars.bundled import ensure_bundled_avatar

    try:
        await asyncio.get_running_loop().run_in_executor(None, ensure_bundled_avatar)
    except Exception as exc:  # noqa: BLE001 - sessions on this avatar get a 422 that says why
        log.error("cannot build the bundled avatar: %s", exc)


async def run_edge(config: EdgeConfig, stop: asyncio.Event) -> None:
    await _provide_bundled_avatar()
    edge = Edge(config)
    edge.start()
    runner = web.AppRunner(create_app(edge), handle_signals=False, access_log_class=RedactingAccessLogger)
    await runner.setup()
    site = web.TCPSite(runner, config.http.host, config.http.port)
    await site.start()
    warm = asyncio.create_task(_warm_default_avatar(edge, config.avatars.default))
    targets = config.inference
    log.info(
        "edge on http://%s:%d (inference: %s over %s)",
        config.http.host,
        config.http.port,
        ", ".join(targets.targets),
        targets.protocol,
    )
    try:
        await stop.wait()
    finally:
        warm.cancel()
        await runner.cleanup()


def _edge_config(args: argparse.Namespace, inference: list[str] | None) -> EdgeConfig:
    return load_edge_config(
        args.config,
        {
            "http.host": args.host,
            "http.port": args.port,
            "inference.targets": inference,
            "inference.protocol": args.inference_protocol,
            "avatars.directory": str(args.avatars) if getattr(args, "avatars", None) else None,
            "tts.engine": args.tts_engine,
        },
    )


def _edge(args: argparse.Namespace) -> int:
    targets = [t.strip() for t in args.inference.split(",") if t.strip()] if args.inference else None
    config = _edge_config(args, targets)

    async def main() -> None:
        await run_edge(config, stop_on_signals())

    asyncio.run(main())
    return 0


def _serve(args: argparse.Namespace) -> int:
    """Inference in its own process (its own GIL and cores), the edge in this one."""
    inference_port = args.inference_port or free_port()
    config = _edge_config(args, [f"127.0.0.1:{inference_port}"])
    command = [
        sys.executable,
        "-m",
        "lipstream.cli",
        "--log-level",
        args.log_level,
        "inference",
        "--host",
        "127.0.0.1",
        "--port",
        str(inference_port),
    ]
    if args.inference_config:
        command += ["--config", str(args.inference_config)]
    if args.metrics_port is not None:
        command += ["--metrics-port", str(args.metrics_port)]

    async def main() -> int:
        stop = stop_on_signals()
        child = InferenceChild(command, f"127.0.0.1:{inference_port}", INFERENCE_START_TIMEOUT_S, args.inference_hung_s)
        starting = asyncio.ensure_future(child.start())
        stopped = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({starting, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if stopped.done():
                return 0
            try:
                starting.result()
            except InferenceChildFailed as exc:
                log.error("%s", exc)
                return 1
            supervisor = asyncio.create_task(child.supervise(), name="inference-supervisor")
            try:
                await run_edge(config, stop)
            finally:
                supervisor.cancel()
                await asyncio.gather(supervisor, return_exceptions=True)
            return 0
        finally:
            starting.cancel()
            stopped.cancel()
            await child.stop()

    return asyncio.run(main())


def _add_edge_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="edge YAML config (default: built-in defaults)")
    parser.add_argument("--host", help="HTTP listen address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="HTTP port (default 8080)")
    parser.add_argument("--avatars", type=Path, help="directory of avatar directories")
    parser.add_argument("--tts-engine", help="the default text-to-speech engine: espeak-ng, openai or piper")
    parser.add_argument(
        "--inference-protocol", metavar="lipsync|kserve", help="how frames reach inference (default lipsync)"
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    edge = subparsers.add_parser("edge", help="run the WebRTC edge and signaling API")
    _add_edge_arguments(edge)
    edge.add_argument("--inference", help="HOST:PORT[,HOST:PORT...] of inference servers")
    edge.set_defaults(handler=_edge)

    serve = subparsers.add_parser("serve", help="inference and edge together on this machine")
    _add_edge_arguments(serve)
    serve.add_argument("--inference-port", type=int, help="gRPC port of the inference child (default: a free one)")
    serve.add_argument("--inference-config", type=Path, help="inference YAML config")
    serve.add_argument("--metrics-port", type=int, help="inference Prometheus port (default 9151)")
    serve.add_argument(
        "--inference-hung-s",
        type=float,
        default=INFERENCE_HUNG_S,
        help=f"restart the inference child after this long without an answer (default {INFERENCE_HUNG_S:g})",
    )
    serve.set_defaults(handler=_serve)
