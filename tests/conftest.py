"""Shared fixtures: a per-run cache for generated models and avatars, real servers on free ports."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Generated models and avatars are built once per test run, never in the user's cache.
_RUN_CACHE = Path(os.environ.setdefault("LIPSTREAM_CACHE_DIR", str(Path(__file__).parent / "artifacts" / "cache")))


@pytest.fixture(scope="session")
def cache_root() -> Path:
    _RUN_CACHE.mkdir(parents=True, exist_ok=True)
    return _RUN_CACHE
