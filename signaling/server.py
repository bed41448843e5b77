"""`lipstream edge` and `lipstream serve`: one edge process, or a front and its workers."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from lipstream.lifecycle import Shutdown, free_port
from media_server.config import EdgeConfig, load_edge_config
from signaling.inference_child import InferenceChild, InferenceChildFailed
from signaling.running import run_edge
from signaling.workers.front import run_front
from signaling.workers.routing import worker_count

log = logging.getLogger(__name__)

INFERENCE_START_TIMEOUT_S = 300.0  # the first start generates the built-in model
INFERENCE_HUNG_S = 10.0  # longer than a freeze the service survives (a 5 s stop costs moving lips, not a restart)
SERVE_INFERENCE_CORES = 1  # `serve --workers auto` leaves this many cores to its inference child


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
            "http.workers": args.workers,
        },
    )


async def _run_edges(config: EdgeConfig, shutdown: Shutdown, reserved_cores: int = 0) -> None:
    """One edge process, or a front and its workers (`signaling.workers`)."""
    workers = worker_count(config.http.workers, reserved_cores)
    if workers == 1:
        await run_edge(config, shutdown)
    else:
        await run_front(config, workers, shutdown)


def edge_config(args: argparse.Namespace) -> EdgeConfig:
    """What `lipstream edge` runs with: the file, LIPSTREAM_EDGE_* variables, then its flags."""
    targets = [t.strip() for t in args.inference.split(",") if t.strip()] if args.inference else None
    return _edge_config(args, targets)


def _edge(args: argparse.Namespace) -> int:
    config = edge_config(args)

    async def main() -> None:
        await _run_edges(config, Shutdown())

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
        shutdown = Shutdown()
        child = InferenceChild(command, f"127.0.0.1:{inference_port}", INFERENCE_START_TIMEOUT_S, args.inference_hung_s)
        starting = asyncio.ensure_future(child.start())
        stopped = asyncio.ensure_future(shutdown.drain.wait())
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
                await _run_edges(config, shutdown, reserved_cores=SERVE_INFERENCE_CORES)
            finally:
                supervisor.cancel()
                await asyncio.gather(supervisor, return_exceptions=True)
            return 0
        finally:
            starting.cancel()
            stopped.cancel()
            await child.stop()

    return asyncio.run(main())


def _workers(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--workers must be a number or 'auto', got {text!r}") from None


def _add_edge_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="edge YAML config (default: built-in defaults)")
    parser.add_argument("--host", help="HTTP listen address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="HTTP port (default 8080)")
    parser.add_argument("--avatars", type=Path, help="directory of avatar directories")
    parser.add_argument("--tts-engine", help="the default text-to-speech engine: espeak-ng, openai or piper")
    parser.add_argument(
        "--inference-protocol", metavar="lipsync|kserve", help="how frames reach inference (default lipsync)"
    )
    parser.add_argument(
        "--workers",
        type=_workers,
        metavar="N|auto",
        help="edge processes behind the port (default 1; auto = the usable cores, serve leaves one to inference)",
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
