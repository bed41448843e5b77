"""What the avatar says, and when: utterances on the session's frame timeline.

Both tracks read the same timeline, so the audio the browser hears is the
audio that drives the lips. An utterance starts on a video frame boundary;
its audio chunk k (20 ms) and video frame i (40 ms) come from the same
sample offsets. Utterances play back to back, in the order they were queued.

When a live utterance's next frame is not ready by the time it must be shown
(the feed is slower than real time), the utterance is held back one frame:
audio and video shift together, so they never drift apart.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from lipstream.timebase import CHUNKS_PER_FRAME, PLAYBACK_CHUNK_SAMPLES
from media_server.speech.utterance import Utterance

SILENT_CHUNK = np.zeros(PLAYBACK_CHUNK_SAMPLES, np.int16)
SILENT_CHUNK.flags.writeable = False


class SpeechQueueFull(RuntimeError):
    """More utterances queued than the session allows."""


@dataclass
class SpeechEvent:
    """What happened to an utterance, at which session frame.

    speech_start says how long it waited: `queued_frames` behind earlier speech (from when it was
    queued until the speech ahead of it ended), then `lead_frames` until its first frame (the
    pipeline's lead and the model's look-ahead). speech_end says whether it was cut short and how
    much of it played; `interrupted` is sent for every utterance an interrupt drops.
    """

    kind: str  # "speech_start" | "speech_end" | "interrupted"
    utterance: int
    frame: int
    queued_frames: int = 0
    lead_frames: int = 0
    played_frames: int = 0
    interrupted: bool = False


class PlannedFrame(NamedTuple):
    """Which frame of which utterance a session frame shows."""

    utterance: Utterance
    utterance_frame: int


class SpeechTimeline:
    def __init__(self, lead_frames: int, max_queued: int) -> None:
        self.lead_frames = lead_frames
        self.max_queued = max_queued
        self._queue: deque[Utterance] = deque()
        self._frame = 0  # the latest frame either track has reached
        self.events: deque[SpeechEvent] = deque(maxlen=64)
        self.stalled_frames = 0
        self._gap_frame = -1  # a frame a starved live utterance skipped: silence and idle
        self._last_end = 0  # the frame the latest utterance ended (or was cut) at
        self.added = asyncio.Event()  # set when an utterance is queued: the audio track sleeps through silence

    @property
    def speaking(self) -> bool:
        head = self._queue[0] if self._queue else None
        return head is not None and head.start is not None and head.start <= self._frame

    @property
    def queued(self) -> bool:
        """Something is playing or waiting to."""
        return bool(self._queue)

    def ensure_room(self, pending: int = 0) -> None:
        """Raise SpeechQueueFull unless one more utterance (after `pending` others) fits."""
        if len(self._queue) + pending >= self.max_queued:
            raise SpeechQueueFull(f"{self.max_queued} utterances already queued")

    def queued_seconds(self) -> float:
        return sum(u.seconds for u in self._queue)

    def add(self, utterance: Utterance, extra_lead: int = 0) -> None:
        """Queue after what is already playing; the first frame is `lead` frames out."""
        self.ensure_room()
        utterance.queued_at = self._frame
        self._queue.append(utterance)
        self._schedule(extra_lead)
        self.added.set()

    def _schedule(self, extra_lead: int = 0) -> None:
        # `_frame` is the newest frame a track has reached, so the next frame still to be
        # rendered is at most `_frame`: `lead_frames` ahead of it leaves that many frame
        # times for inference.
        earliest = self._frame + max(1, self.lead_frames + extra_lead)
        previous_end: int | None = earliest
        for utterance in self._queue:
            if utterance.start is None:
                if previous_end is None:
                    return
                utterance.start = max(earliest, previous_end)
            frames = utterance.frames
            previous_end = None if frames is None else utterance.start + frames

    def interrupt(self) -> list[Utterance]:
        dropped = list(self._queue)
        self._queue.clear()
        frame = self._frame
        for utterance in dropped:
            utterance.drop()
            played = 0
            if utterance.start is not None and utterance.start <= frame:  # it had started: it ends here
                played = min(frame - utterance.start, utterance.received)
                self.events.append(
                    SpeechEvent("speech_end", utterance.id, frame, played_frames=played, interrupted=True)
                )
            self.events.append(SpeechEvent("interrupted", utterance.id, frame, played_frames=played, interrupted=True))
        if dropped:
            self._last_end = frame
        return dropped

    def finished_live(self) -> None:
        """A live utterance learnt its length: the ones after it can be scheduled."""
        self._schedule()

    def advance_to(self, frame: int) -> None:
        """Move the shared clock to `frame`: ends utterances, starts the next, holds a starved live one."""
        while self._frame < frame:
            self._frame += 1
            self._step(self._frame)

    def _step(self, frame: int) -> None:
        while self._queue:
            head = self._queue[0]
            if head.start is None or head.start > frame:
                return
            index = frame - head.start
            if head.frames is not None and index >= head.frames:
                self._queue.popleft()
                self.events.append(SpeechEvent("speech_end", head.id, frame, played_frames=head.frames))
                self._last_end = frame
                self._schedule()
                continue
            if not head.finished and not head.ready(index):
                self._delay_from(head)
                self._gap_frame = frame
                self.stalled_frames += 1
                return
            if index == 0:
                due = max(head.queued_at, self._last_end)  # when nothing ahead of it was playing any more
                self.events.append(
                    SpeechEvent(
                        "speech_start", head.id, frame, queued_frames=due - head.queued_at, lead_frames=frame - due
                    )
                )
            head.forget_before(index)
            return

    def _delay_from(self, head: Utterance) -> None:
        for utterance in self._queue:
            if utterance.start is not None:
                utterance.start += 1
            if utterance is not head and utterance.start is None:
                break

    def plan(self, frame: int) -> PlannedFrame | None:
        """The utterance frame shown at session frame `frame` (present or ahead), if any."""
        if frame == self._gap_frame:
            return None
        for utterance in self._queue:
            if utterance.start is None or utterance.start > frame:
                return None
            index = frame - utterance.start
            frames = utterance.frames
            if frames is None or index < frames:
                return PlannedFrame(utterance, index)
        return None

    def audio_chunk(self, chunk: int) -> np.ndarray:
        """48 kHz s16 samples for session chunk `chunk` (two per video frame)."""
        planned = self.plan(chunk // CHUNKS_PER_FRAME)
        if planned is None:
            return SILENT_CHUNK
        return planned.utterance.chunk(planned.utterance_frame * CHUNKS_PER_FRAME + chunk % CHUNKS_PER_FRAME)
