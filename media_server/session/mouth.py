"""The look-ahead inference pipeline: mouth regions requested ahead of their frames' deadlines.

Frame n's request goes out while frames n .. n + pipeline_frames are planned, so
inference has that many frame times to answer. A result that misses its deadline
is not waited for: the frame is shown idle and counted late, and the stream goes on.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import NamedTuple

from inference_service.client import FrameStream, InferenceUnavailable
from media_server.avatars.store import LoadedAvatar
from media_server.session.clock import AvClock
from media_server.session.stats import SessionStats
from media_server.speech.timeline import SpeechTimeline
from protos.lipsync.v1 import lipsync_pb2 as pb

RENDER_MARGIN_S = 0.010  # time kept for compositing and encoding before a frame is due


class Mouth(NamedTuple):
    """A frame's mouth region (None: the idle frame), and whether it should have had one and came too late."""

    crop: bytes | None
    late: bool

    @property
    def idle(self) -> bool:
        """Nothing is said at this frame (a late mouth is speech, shown with the idle picture)."""
        return self.crop is None and not self.late


IDLE = Mouth(None, late=False)
LATE = Mouth(None, late=True)


@dataclass
class PendingMouth:
    frame: int
    future: asyncio.Future[pb.FrameResult]
    sent: float
    arrived: float = field(default=0.0)

    def on_done(self, future: asyncio.Future[pb.FrameResult]) -> None:
        self.arrived = time.perf_counter()


class MouthPipeline:
    def __init__(
        self,
        avatar: LoadedAvatar,
        model_id: str,
        stream: FrameStream,
        timeline: SpeechTimeline,
        clock: AvClock,
        stats: SessionStats,
        pipeline_frames: int,
    ) -> None:
        self._avatar = avatar
        self._model_id = model_id
        self._stream = stream
        self._timeline = timeline
        self._clock = clock
        self._stats = stats
        self._pipeline_frames = pipeline_frames
        self._idle = avatar.idle_sequence()
        self._crops = avatar.crops_i420  # mapped from the shared cache; copied into each request
        self._pending: dict[tuple[int, int], PendingMouth] = {}  # (utterance id, its frame) -> request

    @property
    def connected(self) -> bool:
        return self._stream.connected

    def background(self, frame: int) -> int:
        """The avatar frame session frame `frame` shows (the idle loop runs on while speaking)."""
        return self._idle[frame % len(self._idle)]

    def _deadline(self, frame: int) -> float:
        return self._clock.frame_due(frame) - RENDER_MARGIN_S

    def submit_ahead(self, n: int, step: int = 1) -> None:
        """Request every planned, ready frame from `n` to `n + pipeline_frames` not yet requested (only every
        `step`-th one: the others will not be sent)."""
        for frame in range(n, n + self._pipeline_frames + 1):
            if frame % step:
                continue
            planned = self._timeline.plan(frame)
            if planned is None:
                continue
            key = (planned.utterance.id, planned.utterance_frame)
            if key in self._pending or not planned.utterance.ready(planned.utterance_frame):
                continue
            window = planned.utterance.window(planned.utterance_frame)
            if window is None:
                continue
            budget = self._clock.seconds_until(self._deadline(frame))
            if budget <= 0:
                continue
            request = pb.FrameRequest(
                frame_id=frame,
                model=self._model_id,
                budget_us=int(budget * 1e6),
                compact=pb.CompactInput(
                    crop=self._crops[self.background(frame)].tobytes(), crop_format=pb.IMAGE_FORMAT_I420, audio=window
                ),
            )
            try:
                future = self._stream.submit(request)
            except InferenceUnavailable:
                return  # degrade to idle frames; the stream reconnects with backoff
            pending = PendingMouth(frame, future, time.perf_counter())
            future.add_done_callback(pending.on_done)
            self._pending[key] = pending

    async def mouth_for(self, n: int) -> Mouth:
        """Frame n's mouth region (I420 crop), or none: idle, or late (counted)."""
        planned = self._timeline.plan(n)
        if planned is None:
            return IDLE
        self._stats.speaking()
        pending = self._pending.pop((planned.utterance.id, planned.utterance_frame), None)
        if pending is None:
            self._stats.late()
            return LATE
        timeout = max(0.0, self._clock.seconds_until(self._deadline(n)))
        done, _ = await asyncio.wait({pending.future}, timeout=timeout)
        if not done or pending.future.cancelled() or pending.future.exception() is not None:
            self._stats.late()
            return LATE
        result = pending.future.result()
        timings = result.timings
        self._stats.record("inference_rtt", (pending.arrived - pending.sent) * 1000)
        self._stats.record("inference_queue", timings.queue_us / 1000)
        self._stats.record("inference_compute", timings.compute_us / 1000 / max(1, timings.batch_size))
        return Mouth(result.mouth, late=False)

    def drop_before(self, frame: int) -> None:
        """Frames skipped by the clock will never be shown."""
        for key in [key for key, pending in self._pending.items() if pending.frame < frame]:
            self._pending.pop(key).future.cancel()

    def drop_all(self) -> None:
        for pending in self._pending.values():
            pending.future.cancel()
        self._pending.clear()

    async def close(self) -> None:
        self.drop_all()
        await self._stream.close()
