"""Which worker a request belongs to: a session's id names the worker that owns it; how many workers there are."""

from __future__ import annotations

import os
import re

_OWNER = re.compile(r"^w(\d+)\.")
_SESSION_IN_PATH = re.compile(r"(?:^|/)sessions/([^/]+)")


def session_prefix(index: int) -> str:
    """What worker `index` starts its session ids with."""
    return f"w{index}."


def session_in(path: str) -> str | None:
    """The session a path is bound to: any path under `sessions/{id}` (WHEP's included), else None."""
    found = _SESSION_IN_PATH.search(path)
    return found.group(1) if found else None


def owner_of(session_id: str) -> int | None:
    """The index of the worker that made `session_id`, if it is a worker's id at all."""
    found = _OWNER.match(session_id)
    return int(found.group(1)) if found else None


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, as a container's cpuset sets it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def worker_count(setting: int | str, reserved_cores: int = 0) -> int:
    """`http.workers` as a number: "auto" is the usable cores less those `reserved_cores` (at least one)."""
    if setting == "auto":
        return max(1, usable_cores() - reserved_cores)
    return int(setting)
