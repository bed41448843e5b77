"""`lipstream models build|list|export-triton`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from inference_service.config import load_inference_config
from inference_service.models import cli as models_cli
from inference_service.triton.repository import ExportError, export, model_file


def _cmd_export(args: argparse.Namespace) -> int:
    config = load_inference_config(args.config)
    spec = next((spec for spec in config.models if spec.id == args.model), None)
    if spec is None:
        known = ", ".join(spec.id for spec in config.models)
        print(f"unknown model '{args.model}'; known: {known}", file=sys.stderr)
        return 2
    try:
        written = export(spec, model_file(spec), args.out, config.batching)
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    commands = models_cli.register(subparsers)
    exporter = commands.add_parser(
        "export-triton",
        help="write a Triton model repository: the model, its layout conversions and an ensemble (MODEL-compact)",
    )
    exporter.add_argument("--model", required=True, metavar="ID", help="a model id of the inference config")
    exporter.add_argument("--out", required=True, type=Path, metavar="DIR", help="the model repository to write")
    exporter.add_argument("--config", type=Path, help="inference YAML config (models and batching; default: built-in)")
    exporter.set_defaults(handler=_cmd_export)
