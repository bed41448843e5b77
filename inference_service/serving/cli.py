"""`lipstream inference`."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from inference_service.config import InferenceConfig, load_inference_config
from inference_service.serving.server import serve_until_signalled


def inference_config(args: argparse.Namespace) -> InferenceConfig:
    """What `lipstream inference` runs with: the file, LIPSTREAM_INFERENCE_* variables, then its flags."""
    overrides = {"server.host": args.host, "server.port": args.port, "server.metrics_port": args.metrics_port}
    return load_inference_config(args.config, overrides)


def _run(args: argparse.Namespace) -> int:
    asyncio.run(serve_until_signalled(inference_config(args)))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("inference", help="run the gRPC inference service (lipsync.v1 and KServe v2)")
    parser.add_argument("--config", type=Path, help="YAML config (default: built-in defaults)")
    parser.add_argument("--host", help="listen address (default [::])")
    parser.add_argument("--port", type=int, help="gRPC port (default 50051; 0 picks a free one)")
    parser.add_argument("--metrics-port", type=int, help="Prometheus port (default 9151; 0 picks a free one)")
    parser.set_defaults(handler=_run)
