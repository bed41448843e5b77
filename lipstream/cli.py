"""The `lipstream` console script: one entry point, a subcommand per job.

Each service package owns its subcommands through a `register(subparsers)`
function; this module only assembles them, so importing it stays cheap.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

# Set before numpy loads: sessions and batches give the parallelism; BLAS threads
# on top only fight them for the cores (and make small matmuls 50x slower).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
from collections.abc import Callable, Sequence

from lipstream.config import CONFIG_EXIT_CODE, ConfigError

Register = Callable[[argparse._SubParsersAction], None]


def _registrars() -> tuple[list[Register], list[Register]]:
    """(top-level registrars, `bench` registrars)."""
    from benchmarks import cli as bench_cli
    from inference_service.models import cli as models_cli
    from inference_service.serving import cli as inference_cli
    from media_server.avatars import cli as avatar_cli
    from signaling import server as edge_cli

    top: list[Register] = [edge_cli.register, inference_cli.register, models_cli.register, avatar_cli.register]
    return top, bench_cli.REGISTRARS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lipstream", description=__doc__.splitlines()[0])
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    top, bench = _registrars()
    for register in top:
        register(commands)
    bench_parser = commands.add_parser("bench", help="benchmarks that write JSON results")
    bench_commands = bench_parser.add_subparsers(dest="bench", required=True, metavar="BENCH")
    for register in bench:
        register(bench_commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
