"""`lipstream avatar prepare|list`, over the avatar directory the edge config names."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lipstream.timebase import VIDEO_FPS
from media_server.avatars.catalogue import BUNDLED_AVATAR, AvatarCatalogue, AvatarNotFound, check_name
from media_server.avatars.format import AvatarError, read_manifest
from media_server.avatars.prepare import prepare_avatar
from media_server.config import load_edge_config

BAD_INPUT_EXIT_CODE = 2


def register(subparsers: argparse._SubParsersAction) -> None:
    avatar = subparsers.add_parser("avatar", help="prepare and list avatars")
    commands = avatar.add_subparsers(dest="avatar_command", required=True, metavar="ACTION")

    prepare = commands.add_parser("prepare", help="build an avatar from a video or a photo")
    prepare.add_argument("input", type=Path, help="a video (any FFmpeg format) or a photo")
    prepare.add_argument("--name", required=True, help="the avatar's name")
    prepare.add_argument(
        "--out", type=Path, default=None, help="output directory (default: the avatars directory's NAME)"
    )
    prepare.add_argument("--fps", type=int, default=VIDEO_FPS, help=f"frame rate of the avatar (default {VIDEO_FPS})")
    _add_directory_arguments(prepare)
    prepare.set_defaults(handler=_prepare)

    listing = commands.add_parser("list", help="avatars in the avatars directory, plus the bundled 'default'")
    _add_directory_arguments(listing)
    listing.set_defaults(handler=_list)


def _add_directory_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="edge YAML config whose avatars.directory to use")
    parser.add_argument("--avatars", type=Path, help="directory of avatar directories (overrides the config)")


def _catalogue(args: argparse.Namespace) -> AvatarCatalogue:
    config = load_edge_config(args.config, {"avatars.directory": str(args.avatars) if args.avatars else None})
    return AvatarCatalogue(config.avatars.directory)


def _prepare(args: argparse.Namespace) -> int:
    if args.fps <= 0:
        print(f"error: --fps must be positive, got {args.fps}", file=sys.stderr)
        return BAD_INPUT_EXIT_CODE
    try:
        check_name(args.name)
        out = args.out if args.out is not None else _catalogue(args).new_directory(args.name)
        print(prepare_avatar(args.input, args.name, out, args.fps))
    except (AvatarError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return BAD_INPUT_EXIT_CODE
    return 0


def _list(args: argparse.Namespace) -> int:
    catalogue = _catalogue(args)
    for name in catalogue.names():
        try:
            directory = catalogue.directory(name)
            manifest = read_manifest(directory)
            detail = f"{directory} ({manifest.fps} fps, model {manifest.model})"
        except AvatarError as exc:
            detail = "bundled, built when an edge first starts" if name == BUNDLED_AVATAR else f"unusable: {exc}"
        except AvatarNotFound as exc:
            detail = f"unusable: {exc}"
        print(f"{name}\t{detail}")
    return 0
