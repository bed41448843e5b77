"""Speech into one session: uploaded files decoded off the loop, live feeds, and interrupts."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import Executor

import numpy as np

from lipstream.timebase import SPEECH_RATE
from media_server.config import SessionConfig
from media_server.metrics import EdgeMetrics
from media_server.session.stats import SessionStats
from media_server.speech.audio import PcmFormat, concat_samples, decode_audio, to_playback_frames
from media_server.speech.features import FeatureExtractor
from media_server.speech.incremental import IncrementalFeatures
from media_server.speech.live import LiveFeed, LiveLimits
from media_server.speech.timeline import SpeechTimeline
from media_server.speech.utterance import Utterance


class SpeechInterrupted(RuntimeError):
    """An interrupt came while the speech was still being decoded: it will not play."""


class SpeechInput:
    def __init__(
        self,
        timeline: SpeechTimeline,
        extractor: FeatureExtractor,
        lookahead_frames: int,
        executor: Executor | None,
        config: SessionConfig,
        stats: SessionStats,
        metrics: EdgeMetrics | None,
    ) -> None:
        self._timeline = timeline
        self._extractor = extractor
        self._lookahead = lookahead_frames
        self._executor = executor
        self._config = config
        self._stats = stats
        self._metrics = metrics
        self._decode_lock = asyncio.Lock()
        self._decoding = 0  # uploads accepted but not yet queued: they count against the queue
        self._interrupts = 0
        self._closed = False

    async def speak(self, data: bytes) -> Utterance:
        """An audio file (any format FFmpeg reads), queued after what is playing.

        The queue is checked before any decoding, uploads of one session are decoded one
        at a time, and an interrupt during decoding means the file never plays.
        """
        self._timeline.ensure_room(self._decoding)
        interrupts = self._interrupts
        loop = asyncio.get_running_loop()
        self._decoding += 1
        try:
            async with self._decode_lock:
                samples = await loop.run_in_executor(
                    self._executor, decode_audio, data, SPEECH_RATE, self._config.max_speech_seconds
                )
                started = time.perf_counter()
                vectors, playback = await loop.run_in_executor(self._executor, self._file_features, samples)
        finally:
            self._decoding -= 1
        self._stats.record("features", (time.perf_counter() - started) * 1000 / max(1, len(vectors)))
        if self._interrupts != interrupts or self._closed:
            raise SpeechInterrupted("interrupted before it could start")
        utterance = Utterance.from_file(vectors, playback, samples.size)
        self._timeline.add(utterance)
        self._queued(utterance)
        return utterance

    def _file_features(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        vectors = self._extractor.vectors(samples)
        return vectors, concat_samples(to_playback_frames(samples), np.int16)

    def _queued(self, utterance: Utterance) -> None:
        if self._metrics is not None:
            self._metrics.utterances.labels(utterance.kind).inc()

    def live_feed(self, pcm: PcmFormat) -> LiveFeed:
        """A live PCM feed into this session."""
        limits = LiveLimits(self._config.max_speech_seconds, self._config.live_buffer_seconds)
        return LiveFeed(
            self._timeline,
            pcm,
            IncrementalFeatures(self._extractor, self._lookahead),
            self._executor,
            limits,
            self._queued,
        )

    def interrupt(self) -> int:
        """Drop everything queued, and any upload still being decoded; the number of utterances dropped."""
        self._interrupts += 1
        return len(self._timeline.interrupt())

    def close(self) -> None:
        self._closed = True
        self.interrupt()
