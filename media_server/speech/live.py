"""A live utterance: PCM (streamed TTS, a microphone) that the avatar speaks as it arrives."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from lipstream.timebase import VIDEO_FPS
from media_server.speech.audio import AudioTooLongError, PcmFormat, PcmResampler, PlaybackChunker, concat_samples
from media_server.speech.incremental import IncrementalFeatures
from media_server.speech.timeline import SpeechTimeline
from media_server.speech.utterance import Utterance


class Ingested(NamedTuple):
    """What a chunk of live audio became: model windows, 48 kHz playback, and its 16 kHz length."""

    windows: list[np.ndarray]
    playback: np.ndarray
    samples_16k: int


@dataclass(frozen=True)
class LiveLimits:
    max_seconds: float  # one live utterance may last this long
    ahead_seconds: float  # the feed may run this far ahead of playback before `push` waits

    @property
    def ahead_frames(self) -> int:
        return int(self.ahead_seconds * VIDEO_FPS)


class LiveFeed:
    """Live PCM -> one utterance that grows as audio arrives; `end()` closes it, the next push opens another.

    Resampling and features run in `executor`, never on the event loop, and only for audio
    within the limits: a chunk is measured by its size before any work is done on it.
    """

    def __init__(
        self,
        timeline: SpeechTimeline,
        pcm: PcmFormat,
        features: IncrementalFeatures,
        executor: Executor | None,
        limits: LiveLimits,
        on_queued: Callable[[Utterance], None],
    ) -> None:
        self._timeline = timeline
        self._pcm = pcm
        self._resampler = PcmResampler(pcm)
        self._received_s = 0.0  # of the current utterance, as sent
        self._features = features
        self._chunker = PlaybackChunker()
        self._executor = executor
        self._limits = limits
        self._on_queued = on_queued
        self.utterance: Utterance | None = None

    @property
    def active(self) -> bool:
        return self.utterance is not None

    def _ingest(self, chunk: bytes) -> Ingested:
        samples = self._resampler.push(chunk)
        windows = [window for _, window in self._features.push(samples)]
        return Ingested(windows, concat_samples(self._chunker.push(samples), np.int16), samples.size)

    def _drain(self) -> Ingested:
        tail = self._resampler.flush()
        windows = [w for _, w in self._features.push(tail)] + [w for _, w in self._features.finish()]
        return Ingested(windows, concat_samples(self._chunker.push(tail) + self._chunker.flush(), np.int16), 0)

    async def push(self, chunk: bytes) -> None:
        """Add audio; waits while the feed is `ahead_seconds` ahead of playback.

        Raises AudioTooLongError past `max_seconds`; after an interrupt the rest of the
        utterance is dropped until `end()`.
        """
        if self.utterance is not None and self.utterance.dropped:
            return
        if self.utterance is None:
            self._timeline.ensure_room()
        self._received_s += self._pcm.seconds(len(chunk))
        if self._received_s > self._limits.max_seconds:
            raise AudioTooLongError(f"live speech is longer than the {self._limits.max_seconds:g} s limit")
        loop = asyncio.get_running_loop()
        ingested = await loop.run_in_executor(self._executor, self._ingest, chunk)
        if self.utterance is None:
            utterance = Utterance("live")
            # Audio and video wait together for the model's look-ahead, so they stay in sync.
            self._timeline.add(utterance, extra_lead=self._features.lookahead_frames)
            self._on_queued(utterance)
            self.utterance = utterance
        utterance = self.utterance
        if utterance.dropped:
            return
        utterance.add_live(ingested.windows, ingested.playback, ingested.samples_16k)
        while utterance.received - utterance.shown > self._limits.ahead_frames and not utterance.dropped:
            await utterance.played_more()

    async def end(self) -> Utterance | None:
        """End of the utterance; the next push starts a new one."""
        utterance, self.utterance = self.utterance, None
        self._received_s = 0.0
        tail = await asyncio.get_running_loop().run_in_executor(self._executor, self._drain)
        if utterance is not None:
            utterance.finish(tail.windows, tail.playback)
            self._timeline.finished_live()
        return utterance
