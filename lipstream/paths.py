"""Where bundled data lives: the source tree (editable install) or <prefix>/share/lipstream."""

from __future__ import annotations

import os
import sys
from pathlib import Path

_SOURCE_ROOT = Path(__file__).resolve().parent.parent


def data_dir(name: str) -> Path:
    """`configs` or `web_client`, from the checkout if present, else the installed copy."""
    for root in (_SOURCE_ROOT, Path(sys.prefix) / "share" / "lipstream"):
        candidate = root / name
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"bundled data directory '{name}' is not installed")


def cache_dir() -> Path:
    """Generated models and avatars; LIPSTREAM_CACHE_DIR or the XDG cache."""
    override = os.environ.get("LIPSTREAM_CACHE_DIR")
    if override:
        return Path(override)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "lipstream"
