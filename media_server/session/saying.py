"""Text spoken into a session: a synthesis streamed into a live utterance as the engine makes it.

The first audio is already in hand when the utterance is queued (`TextToSpeech.start`); the rest
is read by a task of the session. An engine that fails or stalls mid-stream ends the utterance
where its audio stops, with a `tts_error` event; an interrupt stops the engine.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from media_server.session.events import Event
from media_server.speech.audio import AudioTooLongError
from media_server.speech.live import LiveFeed
from media_server.speech.timeline import SpeechQueueFull
from media_server.speech.utterance import Utterance
from media_server.tts.engine import TtsFailed
from media_server.tts.service import Started, TextToSpeech

log = logging.getLogger(__name__)


async def begin(feed: LiveFeed, started: Started) -> Utterance:
    """Queue the first audio as a live utterance; the synthesis is closed if that fails."""
    try:
        await feed.push(started.first)
    except BaseException:
        await started.synthesis.aclose()
        raise
    assert feed.utterance is not None
    return feed.utterance


async def keep_saying(feed: LiveFeed, started: Started, tts: TextToSpeech, publish: Callable[[Event], None]) -> None:
    """Feed the rest of the synthesis into the utterance until the engine ends, fails, or it is interrupted."""
    utterance = feed.utterance
    synthesis = started.synthesis
    try:
        while utterance is not None and not utterance.dropped:
            chunk = await tts.next_chunk(synthesis)
            if not chunk:
                break
            await feed.push(chunk)
    except (TtsFailed, AudioTooLongError, SpeechQueueFull) as exc:
        log.warning("utterance %s: %s stopped: %s", utterance.id if utterance else "-", started.engine, exc)
        publish(
            {
                "type": "tts_error",
                "utterance": utterance.id if utterance else None,
                "engine": started.engine,
                "message": str(exc),
            }
        )
    except asyncio.CancelledError:  # the session is closing: nothing more to say
        await synthesis.aclose()
        raise
    await synthesis.aclose()
    await feed.end()
