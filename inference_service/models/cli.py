"""`lipstream models build|list|convert`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from inference_service.models import fp16
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


def _cmd_convert(args: argparse.Namespace) -> int:
    source = Path(args.model)
    if not source.is_file():
        try:
            source = ensure_builtin(args.model)
        except KeyError:
            print(
                f"'{args.model}' is neither a file nor a built-in model ({', '.join(BUILTIN_MODELS)})", file=sys.stderr
            )
            return 2
    target = args.out or fp16.fp16_name(source)
    print(fp16.convert_file(source, target))
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

    convert = commands.add_parser("convert", help="write a model's float16 variant (float32 inputs and outputs)")
    convert.add_argument(
        "model", metavar="MODEL", help=f"an ONNX file or a built-in model ({', '.join(BUILTIN_MODELS)})"
    )
    convert.add_argument("--fp16", action="store_true", required=True, help="float16 weights and compute")
    convert.add_argument(
        "--out", type=Path, metavar="FILE", help="where to write it (default: beside it, NAME-fp16.onnx)"
    )
    convert.set_defaults(handler=_cmd_convert)
    return commands
