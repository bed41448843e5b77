"""Shared fixtures and the test tiers.

Tiers follow the directories: `unit/` (no server, no network), `integration/` (real gRPC and
HTTP servers, real WebRTC peers on loopback), `browser/` (Debian's Chromium through Playwright).
Each test gets its tier's marker, so `pytest -m unit` runs the fast tier alone.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.kit.collector import collector_paused

TESTS = Path(__file__).parent
TIERS = ("unit", "integration", "browser")

# Generated models and avatars are built once per test run, never in the user's cache.
_RUN_CACHE = Path(os.environ.setdefault("LIPSTREAM_CACHE_DIR", str(TESTS / "artifacts" / "cache")))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        tier = item.path.relative_to(TESTS).parts[0]
        if tier not in TIERS:
            raise pytest.UsageError(f"{item.nodeid}: tests live in one of the tier directories {TIERS}")
        item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture
def collector_off() -> Iterator[None]:
    """Only an explicit collection frees reference cycles, as in a long-running edge."""
    with collector_paused():
        yield


@pytest.fixture(scope="session")
def cache_root() -> Path:
    _RUN_CACHE.mkdir(parents=True, exist_ok=True)
    return _RUN_CACHE
