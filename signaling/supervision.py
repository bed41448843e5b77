"""Children kept alive: restarted whenever they go down, after a delay that doubles while starts fail.

`lipstream serve`'s inference child and the edge's worker processes are supervised the same way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

RESTART_BACKOFF_S = (1.0, 30.0)  # first delay, longest delay


async def keep_alive(
    what: str,
    until_down: Callable[[], Awaitable[str | None]],
    start: Callable[[], Awaitable[None]],
    failed: type[Exception],
    restarted: Callable[[], None],
) -> None:
    """Runs until cancelled, or until `until_down` says None (nothing to restart: the service is stopping).

    `until_down` returns why the child went down; `start` raises `failed` when the child does not come up.
    """
    delay = RESTART_BACKOFF_S[0]
    while (reason := await until_down()) is not None:
        log.error("%s %s: restarting it in %.0f s", what, reason, delay)
        await asyncio.sleep(delay)
        try:
            await start()
        except failed as exc:
            log.error("%s", exc)
            delay = min(RESTART_BACKOFF_S[1], delay * 2)
            continue
        restarted()
        delay = RESTART_BACKOFF_S[0]
