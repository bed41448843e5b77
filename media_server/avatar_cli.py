"""`lipstream avatar prepare|list`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lipstream.paths import cache_dir
from media_server.avatar import DEFAULT_AVATAR, MANIFEST, AvatarError, read_manifest
from media_server.avatar_prepare import prepare_avatar

BAD_INPUT_EXIT_CODE = 2


def register(subparsers: argparse._SubParsersAction) -> None:
    avatar = subparsers.add_parser("avatar", help="prepare and list avatars")
    commands = avatar.add_subparsers(dest="avatar_command", required=True, metavar="ACTION")

    prepare = commands.add_parser("prepare", help="build an avatar from a video or a photo")
    prepare.add_argument("input", type=Path, help="a video (any FFmpeg format) or a photo")
    prepare.add_argument("--name", required=True, help="the avatar's name")
    prepare.add_argument("--out", type=Path, default=None, help="output directory (default: the cache's avatars/NAME)")
    prepare.add_argument("--fps", type=int, default=25, help="frame rate of the avatar (default 25)")
    prepare.set_defaults(handler=_prepare)

    listing = commands.add_parser("list", help="avatars in the cache, plus the bundled 'default'")
    listing.set_defaults(handler=_list)


def _prepare(args: argparse.Namespace) -> int:
    if args.fps <= 0:
        print(f"error: --fps must be positive, got {args.fps}", file=sys.stderr)
        return BAD_INPUT_EXIT_CODE
    try:
        out = prepare_avatar(args.input, args.name, args.out, args.fps)
    except (AvatarError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return BAD_INPUT_EXIT_CODE
    print(out)
    return 0


def _list(args: argparse.Namespace) -> int:
    root = cache_dir() / "avatars"
    found = {DEFAULT_AVATAR: "bundled, built on first use"}
    if root.is_dir():
        for directory in sorted(p for p in root.iterdir() if p.is_dir() and (p / MANIFEST).is_file()):
            try:
                manifest = read_manifest(directory)
            except AvatarError as exc:
                found[directory.name] = f"unusable: {exc}"
                continue
            found[directory.name] = f"{directory} ({manifest.fps} fps, model {manifest.model})"
    for name, detail in found.items():
        print(f"{name}\t{detail}")
    return 0
