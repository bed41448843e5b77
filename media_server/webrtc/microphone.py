"""Echo mode: the browser's microphone, as a WebRTC audio track, spoken by the avatar live.

Speech is cut into utterances by a simple energy gate: an utterance opens on
the first loud chunk and ends after `SILENCE_TO_END_S` of quiet, so uploaded
speech queued meanwhile can follow it.
"""

from __future__ import annotations

import logging

import av
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from media_server.session.session import Session
from media_server.speech.audio import AudioTooLongError, PcmFormat
from media_server.speech.live import LiveFeed
from media_server.speech.timeline import SpeechQueueFull

log = logging.getLogger(__name__)

SPEECH_RMS = 0.015  # of full scale; quieter than this is background
SILENCE_TO_END_S = 0.6


def _pcm(frame: av.AudioFrame) -> tuple[bytes, int]:
    """Interleaved s16 bytes and channel count of a decoded WebRTC audio frame."""
    samples = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if frame.format.is_planar and channels > 1:
        samples = samples.T.reshape(1, -1)
    return samples.astype(np.int16, copy=False).tobytes(), channels


async def echo_microphone(session: Session, track: MediaStreamTrack) -> None:
    feed: LiveFeed | None = None
    quiet_s = 0.0
    try:
        while True:
            frame = await track.recv()
            if not isinstance(frame, av.AudioFrame):  # an audio track yields audio frames; nothing else is speech
                continue
            data, channels = _pcm(frame)
            level = float(np.sqrt(np.mean((np.frombuffer(data, np.int16) / 32768.0) ** 2))) if data else 0.0
            seconds = frame.samples / frame.sample_rate
            if feed is None:
                if level < SPEECH_RMS:
                    continue
                feed = session.live_feed(PcmFormat(frame.sample_rate, "s16le", channels))
            quiet_s = quiet_s + seconds if level < SPEECH_RMS else 0.0
            try:
                await feed.push(data)
            except (SpeechQueueFull, AudioTooLongError) as exc:  # this utterance is lost; keep listening
                log.warning("session %s: microphone speech dropped: %s", session.id[:8], exc)
                quiet_s = SILENCE_TO_END_S
            if quiet_s >= SILENCE_TO_END_S:
                await feed.end()
                feed, quiet_s = None, 0.0
    except MediaStreamError:
        log.debug("session %s: microphone track ended", session.id[:8])
    finally:
        if feed is not None and feed.active:
            await feed.end()
