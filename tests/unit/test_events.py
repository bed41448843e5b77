"""A slow events consumer costs the session nothing: bounded queues that drop old stats first."""

from __future__ import annotations

import asyncio

import pytest

from media_server.session.events import EventFanOut, EventQueue


async def test_a_queue_keeps_speech_events_and_only_the_newest_stats() -> None:
    queue = EventQueue(limit=4)
    fan_out = EventFanOut()
    fan_out.subscribe(queue.put)
    for n in range(100):
        fan_out.publish({"type": "stats", "n": n})
    fan_out.publish({"type": "speech_start", "utterance": 1})
    fan_out.publish({"type": "stats", "n": 100})
    assert await queue.get() == {"type": "speech_start", "utterance": 1}
    assert await queue.get() == {"type": "stats", "n": 100}
    assert queue.dropped == 100


async def test_past_the_limit_the_oldest_event_goes_and_close_ends_after_what_is_queued() -> None:
    queue = EventQueue(limit=3)
    for utterance in range(5):
        queue.put({"type": "speech_end", "utterance": utterance})
    queue.close()
    queue.put({"type": "speech_start", "utterance": 9})  # after close: not taken
    assert [event["utterance"] for event in [await queue.get() for _ in range(3)]] == [2, 3, 4]
    assert await queue.get() is None and queue.dropped == 2


async def test_get_waits_for_the_next_event() -> None:
    queue = EventQueue(limit=2)
    waiting = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    assert not waiting.done()
    queue.put({"type": "interrupted", "utterance": 3})
    assert await asyncio.wait_for(waiting, 1) == {"type": "interrupted", "utterance": 3}
    with pytest.raises(ValueError):
        EventQueue(limit=0)
