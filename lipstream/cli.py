"""The `lipstream` console script: one entry point, a subcommand per job.

Each service package owns its subcommands through a `register(subparsers)` function. Only
the package of the command being run is imported, so `lipstream inference` never loads the
edge, and no server process loads the avatar builder or the benchmarks.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

# Set before numpy loads: sessions and batches give the parallelism; BLAS threads
# on top only fight them for the cores (and make small matmuls 50x slower).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# Child processes (inference, edge workers) are forked only to exec at once: gRPC's fork handlers
# have nothing to do, and would log that threads are busy at every start.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")
from collections.abc import Sequence

from lipstream.config import CONFIG_EXIT_CODE, ConfigError

# Command -> the module whose register() adds it.
COMMANDS = {
    "serve": "signaling.server",
    "edge": "signaling.server",
    "edge-worker": "signaling.workers.worker",
    "inference": "inference_service.serving.cli",
    "models": "inference_service.triton.cli",  # build, list, convert, and export-triton
    "doctor": "inference_service.serving.doctor",
    "avatar": "media_server.avatars.cli",
    "bench": "benchmarks.cli",
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser for `command` alone (its module only is imported), or for every command."""
    parser = argparse.ArgumentParser(prog="lipstream", description=__doc__.splitlines()[0])
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    modules = [COMMANDS[command]] if command in COMMANDS else list(dict.fromkeys(COMMANDS.values()))
    for module in modules:
        importlib.import_module(module).register(commands)
    return parser


def _command(argv: Sequence[str]) -> str | None:
    """The command named in `argv`, read without loading any command's module."""
    peek = argparse.ArgumentParser(add_help=False)
    peek.add_argument("--log-level")
    peek.add_argument("command", nargs="?")
    known, _ = peek.parse_known_args(argv)
    return known.command


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(_command(arguments)).parse_args(arguments)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.handler(args) or 0)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return CONFIG_EXIT_CODE
    except OSError as exc:  # a port in use, a file that cannot be read: say so, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
