"""One viewer's session: the A/V clock, the look-ahead inference pipeline, rendering.

One clock per session. Video frame n is due at t0 + n/fps (pts n*3600 at
90 kHz); audio chunk k at t0 + k*20 ms (pts k*960 at 48 kHz). Inference for a
speaking frame is requested `pipeline_frames` ahead of its deadline; a result
that misses the deadline is replaced by the idle frame and counted as late, so
the stream never stalls or bursts. Compositing and H.264 encoding run on the
session's own worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import time
import weakref
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError

from inference_service.client import FrameStream, InferenceClient, InferenceUnavailable
from media_server.audio import (
    AudioTooLongError,
    PcmResampler,
    PlaybackChunker,
    concat_samples,
    decode_audio,
    to_playback_frames,
)
from media_server.compositor import composite
from media_server.config import SessionConfig, VideoConfig
from media_server.encoder import H264Encoder
from media_server.features import SAMPLE_RATE, FeatureExtractor, IncrementalFeatures
from media_server.frame_store import LoadedAvatar
from media_server.speech import (
    CHUNK_SAMPLES,
    CHUNKS_PER_FRAME,
    PLAYBACK_RATE,
    SpeechEvent,
    SpeechTimeline,
    Utterance,
)
from media_server.stats import EdgeMetrics, SessionStats
from protos.lipsync.v1 import lipsync_pb2 as pb

log = logging.getLogger(__name__)

AUDIO_TIME_BASE = fractions.Fraction(1, PLAYBACK_RATE)
CHUNK_SECONDS = CHUNK_SAMPLES / PLAYBACK_RATE
RENDER_MARGIN_S = 0.010  # time kept for compositing and encoding before a frame is due
MAX_BEHIND_FRAMES = 3  # further behind than this (a stalled loop), skip ahead instead of bursting

_crop_bytes: weakref.WeakKeyDictionary[LoadedAvatar, list[bytes]] = weakref.WeakKeyDictionary()


def crop_bytes(avatar: LoadedAvatar) -> list[bytes]:
    """The avatar's model crops as bytes, made once and shared by its sessions."""
    cached = _crop_bytes.get(avatar)
    if cached is None:
        cached = [crop.tobytes() for crop in avatar.crops_i420]
        _crop_bytes[avatar] = cached
    return cached


class SpeechInterrupted(RuntimeError):
    """An interrupt came while the speech was still being decoded: it will not play."""


@dataclass
class PendingMouth:
    frame: int
    future: asyncio.Future
    sent: float
    arrived: float = 0.0

    def on_done(self, future: asyncio.Future) -> None:
        self.arrived = time.perf_counter()


class Session:
    def __init__(
        self,
        session_id: str,
        token: str,
        avatar: LoadedAvatar,
        model_id: str,
        lookahead_frames: int,
        inference: InferenceClient,
        extractor: FeatureExtractor,
        config: SessionConfig,
        video: VideoConfig,
        metrics: EdgeMetrics | None = None,
        speech_executor: Executor | None = None,
    ) -> None:
        self.id = session_id
        self.token = token
        self.avatar = avatar
        self.model_id = model_id
        self.lookahead_frames = lookahead_frames
        self.config = config
        self.extractor = extractor
        self.stats = SessionStats(metrics)
        self._metrics = metrics
        self.timeline = SpeechTimeline(config.pipeline_frames, config.max_queued_utterances)
        self.on_event: Callable[[dict], None] | None = None
        self._loop = asyncio.get_running_loop()
        self._fps = avatar.fps
        self._t0: float | None = None
        self._video_frame = 0
        self._audio_chunk = 0
        self._idle = avatar.idle_sequence()
        self._crops = crop_bytes(avatar)
        self._pending: dict[tuple[int, int], PendingMouth] = {}
        self._stream: FrameStream = inference.open_stream(max_inflight=4 * (config.pipeline_frames + 1))
        self._worker = ThreadPoolExecutor(1, thread_name_prefix=f"session-{session_id[:8]}")
        self._encoder = H264Encoder(avatar.width, avatar.height, avatar.fps, video)
        self._tasks: set[asyncio.Task] = set()
        self._speech_executor = speech_executor
        self._decode_lock = asyncio.Lock()
        self._decoding = 0  # uploads accepted but not yet queued: they count against the queue
        self._interrupts = 0
        self.closed = False
        self.ended = asyncio.Event()

    # -- clock ----------------------------------------------------------------
    def _clock(self) -> float:
        if self._t0 is None:
            self._t0 = self._loop.time()
        return self._t0

    @property
    def speaking(self) -> bool:
        return self.timeline.speaking

    def request_keyframe(self) -> None:
        self._encoder.request_keyframe()

    # -- video ----------------------------------------------------------------
    async def next_video_packet(self) -> av.Packet:
        if self.closed:
            raise MediaStreamError
        t0 = self._clock()
        n = self._video_frame
        behind = int((self._loop.time() - (t0 + n / self._fps)) * self._fps)
        if behind > MAX_BEHIND_FRAMES:
            n += behind
            self.stats.skipped(behind)
            self._drop_pending_before(n)
        self._video_frame = n + 1
        due = t0 + n / self._fps
        self.timeline.advance_to(n)
        self._forward_events()
        await self._submit_ahead(n)
        background = self._idle[n % len(self._idle)]
        mouth = await self._mouth_for(n, due)
        packet = await self._loop.run_in_executor(self._worker, self._render, background, mouth, n * 3600)
        delay = due - self._loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        self.stats.frame_sent(self._loop.time())
        return packet

    def _drop_pending_before(self, frame: int) -> None:
        for key in [key for key, pending in self._pending.items() if pending.frame < frame]:
            self._pending.pop(key).future.cancel()

    def _deadline(self, frame: int) -> float:
        return self._clock() + frame / self._fps - RENDER_MARGIN_S

    async def _submit_ahead(self, n: int) -> None:
        for frame in range(n, n + self.config.pipeline_frames + 1):
            planned = self.timeline.plan(frame)
            if planned is None:
                continue
            utterance, index = planned
            key = (utterance.id, index)
            if key in self._pending or not utterance.ready(index):
                continue
            window = utterance.window(index)
            if window is None:
                continue
            budget = self._deadline(frame) - self._loop.time()
            if budget <= 0:
                continue
            request = pb.FrameRequest(
                frame_id=frame, model=self.model_id, budget_us=int(budget * 1e6),
                compact=pb.CompactInput(crop=self._crops[self._idle[frame % len(self._idle)]],
                                        crop_format=pb.IMAGE_FORMAT_I420,
                                        audio=window),
            )
            try:
                future = await self._stream.submit(request)
            except InferenceUnavailable:
                return  # degrade to idle frames; the stream reconnects with backoff
            pending = PendingMouth(frame, future, time.perf_counter())
            future.add_done_callback(pending.on_done)
            self._pending[key] = pending

    async def _mouth_for(self, n: int, due: float) -> bytes | None:
        planned = self.timeline.plan(n)
        if planned is None:
            return None
        utterance, index = planned
        self.stats.speaking()
        pending = self._pending.pop((utterance.id, index), None)
        if pending is None:
            self.stats.late()
            return None
        timeout = max(0.0, due - RENDER_MARGIN_S - self._loop.time())
        done, _ = await asyncio.wait({pending.future}, timeout=timeout)
        if not done or pending.future.cancelled() or pending.future.exception() is not None:
            self.stats.late()
            return None
        result = pending.future.result()
        timings = result.timings
        self.stats.record("inference_rtt", (pending.arrived - pending.sent) * 1000)
        self.stats.record("inference_queue", timings.queue_us / 1000)
        self.stats.record("inference_compute", timings.compute_us / 1000 / max(1, timings.batch_size))
        return result.mouth

    def _render(self, background: int, mouth: bytes | None, pts: int) -> av.Packet:
        started = time.perf_counter()
        if mouth is None:
            frame = self.avatar.frames[background]
        else:
            frame = composite(self.avatar, background, np.frombuffer(mouth, np.uint8))
            self.stats.record("composite", (time.perf_counter() - started) * 1000)
        encode_started = time.perf_counter()
        packet = self._encoder.encode(frame, pts)
        self.stats.record("encode", (time.perf_counter() - encode_started) * 1000)
        return packet

    # -- audio ----------------------------------------------------------------
    async def next_audio_frame(self) -> av.AudioFrame:
        if self.closed:
            raise MediaStreamError
        t0 = self._clock()
        k = self._audio_chunk
        behind = int((self._loop.time() - (t0 + k * CHUNK_SECONDS)) / CHUNK_SECONDS)
        if behind > 2 * MAX_BEHIND_FRAMES:
            k += behind
        self._audio_chunk = k + 1
        self.timeline.advance_to(k // CHUNKS_PER_FRAME)
        self._forward_events()
        samples = self.timeline.audio_chunk(k)
        delay = t0 + k * CHUNK_SECONDS - self._loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = PLAYBACK_RATE
        frame.pts = k * CHUNK_SAMPLES
        frame.time_base = AUDIO_TIME_BASE
        return frame

    # -- speech ---------------------------------------------------------------
    async def speak(self, data: bytes) -> Utterance:
        """An audio file (any format FFmpeg reads), queued after what is playing.

        The queue is checked before any decoding, uploads of one session are decoded one
        at a time, and an interrupt during decoding means the file never plays.
        """
        self.timeline.ensure_room(self._decoding)
        interrupts = self._interrupts
        self._decoding += 1
        try:
            async with self._decode_lock:
                samples = await self._loop.run_in_executor(
                    self._speech_executor, decode_audio, data, SAMPLE_RATE, self.config.max_speech_seconds)
                started = time.perf_counter()
                vectors, playback = await self._loop.run_in_executor(
                    self._speech_executor, self._file_features, samples)
        finally:
            self._decoding -= 1
        self.stats.record("features", (time.perf_counter() - started) * 1000 / max(1, len(vectors)))
        if self._interrupts != interrupts or self.closed:
            raise SpeechInterrupted("interrupted before it could start")
        utterance = Utterance.from_file(vectors, playback, samples.size)
        self.queue_utterance(utterance)
        return utterance

    def queue_utterance(self, utterance: Utterance, extra_lead: int = 0) -> None:
        self.timeline.add(utterance, extra_lead)
        if self._metrics is not None:
            self._metrics.utterances.labels(utterance.kind).inc()

    def _file_features(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        vectors = self.extractor.vectors(samples)
        return vectors, concat_samples(to_playback_frames(samples), np.int16)

    def live_feed(self, sample_rate: int, sample_format: str = "s16le", channels: int = 1) -> LiveFeed:
        return LiveFeed(self, sample_rate, sample_format, channels)

    def interrupt(self) -> int:
        self._interrupts += 1
        dropped = self.timeline.interrupt()
        for pending in self._pending.values():
            pending.future.cancel()
        self._pending.clear()
        self._forward_events()
        return len(dropped)

    def _forward_events(self) -> None:
        events = self.timeline.events
        while events:
            event: SpeechEvent = events.popleft()
            if self.on_event is not None:
                self.on_event({"type": event.kind, "utterance": event.utterance, "frame": event.frame,
                               "pts_ms": round(event.frame * 1000 / self._fps, 1)})

    # -- state and lifecycle ----------------------------------------------------
    def state(self) -> dict:
        return {
            "session_id": self.id,
            "avatar": self.avatar.name,
            "model": self.model_id,
            "speaking": self.speaking,
            "queued_seconds": round(self.timeline.queued_seconds(), 3),
            "live_stalled_frames": self.timeline.stalled_frames,  # a live feed slower than real time
            "inference_connected": self._stream.connected,
            "frame": self._video_frame,
            "stats": self.stats.snapshot(),
        }

    def spawn(self, coroutine, name: str) -> asyncio.Task:
        """A task that belongs to this session and ends with it."""
        task = asyncio.create_task(coroutine, name=f"{name}:{self.id[:8]}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.ended.set()
        self.interrupt()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._stream.close()
        await self._loop.run_in_executor(None, self._worker.shutdown, True)


class LiveFeed:
    """Live PCM (streamed TTS, a microphone) -> one utterance that grows as audio arrives."""

    def __init__(self, session: Session, sample_rate: int, sample_format: str, channels: int) -> None:
        self._session = session
        self._executor = session._speech_executor
        self._max_frames = int(session.config.max_speech_seconds * session.avatar.fps)
        self._ahead_frames = int(session.config.live_buffer_seconds * session.avatar.fps)
        self._resampler = PcmResampler(sample_rate, SAMPLE_RATE, sample_format, channels)
        self._features = IncrementalFeatures(session.extractor, session.lookahead_frames)
        self._chunker = PlaybackChunker()
        self.utterance: Utterance | None = None

    @property
    def active(self) -> bool:
        return self.utterance is not None

    def _ingest(self, chunk: bytes) -> tuple[list[np.ndarray], np.ndarray, int]:
        samples = self._resampler.push(chunk)
        windows = [window for _, window in self._features.push(samples)]
        return windows, concat_samples(self._chunker.push(samples), np.int16), samples.size

    def _drain(self) -> tuple[list[np.ndarray], np.ndarray]:
        tail = self._resampler.flush()
        windows = [w for _, w in self._features.push(tail)] + [w for _, w in self._features.finish()]
        return windows, concat_samples(self._chunker.push(tail) + self._chunker.flush(), np.int16)

    async def push(self, chunk: bytes) -> None:
        """Add audio; waits while the feed is `live_buffer_seconds` ahead of playback.

        Raises AudioTooLongError past `max_speech_seconds`; after an interrupt the rest of
        the utterance is dropped until `end()`.
        """
        session = self._session
        if self.utterance is not None and self.utterance.dropped:
            return
        if self.utterance is None:
            session.timeline.ensure_room()
        loop = asyncio.get_running_loop()
        windows, playback, count = await loop.run_in_executor(self._executor, self._ingest, chunk)
        if self.utterance is None:
            utterance = Utterance("live")
            session.queue_utterance(utterance, extra_lead=session.lookahead_frames)
            self.utterance = utterance
        utterance = self.utterance
        if utterance.dropped:
            return
        utterance.add_live(windows, playback, count)
        if utterance.received > self._max_frames:
            raise AudioTooLongError(f"live speech is longer than the {session.config.max_speech_seconds:g} s limit")
        while utterance.received - utterance.shown > self._ahead_frames and not utterance.dropped:
            await utterance.played_more()

    async def end(self) -> Utterance | None:
        """End of the utterance; the next push starts a new one."""
        utterance, self.utterance = self.utterance, None
        windows, playback = await asyncio.get_running_loop().run_in_executor(self._executor, self._drain)
        if utterance is not None:
            utterance.finish(windows, playback)
            self._session.timeline.finished_live()
        return utterance
