"""The edge's reclaimer: cycles left by ended sessions are collected without waiting on the collector's thresholds."""

from __future__ import annotations

import asyncio
import weakref

from media_server.memory import Reclaimer


class Cycle:
    """A reference cycle, as a peer connection and its tracks make: only the collector frees it."""

    def __init__(self) -> None:
        self.me = self


def garbage() -> weakref.ref[Cycle]:
    return weakref.ref(Cycle())


async def test_a_reclaim_collects_cycles_left_by_ended_sessions(collector_off: None) -> None:
    reclaimer = Reclaimer(delay_s=0.05)
    left = garbage()
    reclaimer.soon()
    assert left() is not None, "nothing is collected before the delay"
    await asyncio.sleep(0.2)
    assert left() is None
    await reclaimer.flush()


async def test_ends_close_together_share_one_collection(collector_off: None) -> None:
    reclaimer = Reclaimer(delay_s=60)
    first = garbage()
    reclaimer.soon()
    second = garbage()
    reclaimer.soon()  # within the delay: the same reclaim
    await reclaimer.flush()  # at shutdown it runs at once
    assert first() is None and second() is None


async def test_nothing_pending_means_nothing_collected(collector_off: None) -> None:
    reclaimer = Reclaimer(delay_s=0.01)
    left = garbage()
    await reclaimer.flush()
    assert left() is not None
