"""Avatar names -> avatar directories, the one place that resolves them.

Avatars live as directories under one root (`avatars.directory`, or the cache's
`avatars/`). The bundled avatar `default` is generated into the cache (see
`media_server.avatars.bundled`) and found there unless the root holds its own `default`.
"""

from __future__ import annotations

import re
from pathlib import Path

from lipstream.paths import cache_dir
from media_server.avatars.format import MANIFEST

BUNDLED_AVATAR = "default"
AVATAR_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class AvatarNotFound(LookupError):
    pass


def check_name(name: str) -> None:
    """ValueError unless `name` can name an avatar (and so a directory)."""
    if not AVATAR_NAME.match(name):
        raise ValueError(f"avatar name {name!r} must be a plain name: letters, digits, '_', '.', '-'")


def cached_avatars() -> Path:
    """Where avatars go when no directory is configured (the bundled one always goes here)."""
    return cache_dir() / "avatars"


def bundled_avatar_ready() -> bool:
    return (cached_avatars() / BUNDLED_AVATAR / MANIFEST).is_file()


class AvatarCatalogue:
    def __init__(self, directory: Path | None = None) -> None:
        self.root = directory if directory is not None else cached_avatars()

    def names(self) -> list[str]:
        """Every avatar with a manifest under the root, and the bundled one."""
        names = {BUNDLED_AVATAR}
        if self.root.is_dir():
            names.update(p.name for p in self.root.iterdir() if (p / MANIFEST).is_file())
        return sorted(names)

    def directory(self, name: str) -> Path:
        """The directory of avatar `name`; AvatarNotFound for a name that is not a plain, existing one.

        The bundled avatar's directory is returned even before it has been generated.
        """
        if not AVATAR_NAME.match(name):
            raise AvatarNotFound(f"no such avatar '{name}'")
        directory = self.root / name
        if (directory / MANIFEST).is_file():
            return directory
        if name == BUNDLED_AVATAR:
            return cached_avatars() / BUNDLED_AVATAR
        raise AvatarNotFound(f"no such avatar '{name}'")

    def new_directory(self, name: str) -> Path:
        """Where a new avatar called `name` is written (`lipstream avatar prepare`)."""
        check_name(name)
        if name == BUNDLED_AVATAR:
            raise ValueError(f"the name {BUNDLED_AVATAR!r} is reserved for the bundled avatar")
        return self.root / name

    def locate(self, reference: str) -> Path:
        """For command-line tools: a directory path (anything with a separator) or an avatar name."""
        if "/" in reference or "\\" in reference:
            return Path(reference)
        return self.directory(reference)
