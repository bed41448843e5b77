"""`lipstream models build|list`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from inference_service.models.builtin import BUILTIN_MODELS, build_at, builtin_path, ensure_builtin, file_name, lookup


def _cmd_build(args: argparse.Namespace) -> int:
    names = args.names or list(BUILTIN_MODELS)
    try:
        models = [lookup(name) for name in names]
    except KeyError as exc:
        print(exc.args[0], file=sys.stderr)
        return 2
    for model in models:
        path = ensure_builtin(model.name) if args.out is None else build_at(model, args.out / file_name(model.name))
        print(path)
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    rows = [("NAME", "LOOKAHEAD", "STATUS", "PATH")]
    for model in BUILTIN_MODELS.values():
        path = builtin_path(model.name)
        rows.append((model.name, str(model.lookahead_frames), "built" if path.is_file() else "missing", str(path)))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[3])
    return 0


def register(subparsers: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """Adds `models build` and `models list`; returns the `models` actions, for `export-triton` to join."""
    models = subparsers.add_parser("models", help="generate and list the built-in ONNX models")
    commands = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")

    build = commands.add_parser("build", help="generate built-in models (all by default) and print their paths")
    build.add_argument("names", nargs="*", metavar="NAME", help=f"one of: {', '.join(BUILTIN_MODELS)}")
    build.add_argument("--out", type=Path, metavar="DIR", help="write the files here instead of the cache")
    build.set_defaults(handler=_cmd_build)

    listing = commands.add_parser("list", help="built-in models, their look-ahead and whether they are built")
    listing.set_defaults(handler=_cmd_list)
    return commands
