"""What the avatar says, and when: utterances on the session's frame timeline.

Both tracks read the same timeline, so the audio the browser hears is the
audio that drives the lips. An utterance starts on a video frame boundary;
its audio chunk k (20 ms) and video frame i (40 ms) come from the same
sample offsets. Utterances play back to back, in the order they were queued.

A live utterance (streamed TTS, a microphone) grows as audio arrives. When a
frame's features are not ready by the time it must be shown (the feed is
slower than real time), the utterance is held back one frame: audio and video
shift together, so they never drift apart.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from media_server.features import SAMPLES_PER_FRAME, frame_count, model_windows

PLAYBACK_RATE = 48000
CHUNK_SAMPLES = 960  # 20 ms at 48 kHz
CHUNKS_PER_FRAME = 2  # 25 fps video, 50 audio chunks per second
PLAYBACK_PER_FRAME = CHUNK_SAMPLES * CHUNKS_PER_FRAME
SILENT_CHUNK = np.zeros(CHUNK_SAMPLES, np.int16)
SILENT_CHUNK.flags.writeable = False

_ids = itertools.count(1)


class QueueFullError(RuntimeError):
    """More utterances queued than the session allows."""


class PlaybackBuffer:
    """48 kHz s16 samples of one utterance, growing as a live feed arrives (amortised appends)."""

    def __init__(self, samples: np.ndarray | None = None) -> None:
        self._data = np.zeros(0, np.int16) if samples is None else samples
        self.length = self._data.size

    def append(self, samples: np.ndarray) -> None:
        end = self.length + samples.size
        if end > self._data.size:
            grown = np.zeros(max(end, 2 * self._data.size), np.int16)
            grown[: self.length] = self._data[: self.length]
            self._data = grown
        self._data[self.length : end] = samples
        self.length = end

    def fit(self, length: int) -> None:
        """Pad with silence or cut to exactly `length` samples."""
        self.append(np.zeros(max(0, length - self.length), np.int16))
        self.length = length

    def chunk(self, start: int, size: int) -> np.ndarray:
        piece = self._data[start : min(start + size, self.length)]
        return piece if piece.size == size else _fit(piece, size)


@dataclass(eq=False)
class Utterance:
    """Per-frame model windows and the 48 kHz playback of one thing said.

    A file keeps only its per-frame 512-d vectors and reads each [32,16,16]
    window as a view of them (16x less memory than the windows themselves);
    a live feed keeps the windows it has received and not yet shown.
    """

    kind: str  # "file" or "live"
    id: int = field(default_factory=lambda: next(_ids))
    samples_16k: int = 0
    finished: bool = False
    start: int | None = None  # session video frame of its first frame
    received: int = 0  # frames whose window is available
    shown: int = 0  # frames already played
    dropped: bool = False  # interrupted: nothing more of it will play
    playback: PlaybackBuffer = field(default_factory=PlaybackBuffer)
    _file_windows: np.ndarray | None = None
    _live_windows: dict[int, np.ndarray] = field(default_factory=dict)
    _progress: asyncio.Future | None = None

    @classmethod
    def from_file(cls, vectors: np.ndarray, playback: np.ndarray, samples_16k: int) -> Utterance:
        windows = model_windows(vectors)
        utterance = cls("file", samples_16k=samples_16k, finished=True, received=len(windows),
                        _file_windows=windows)
        utterance.playback = PlaybackBuffer(_fit(playback, len(windows) * PLAYBACK_PER_FRAME))
        return utterance

    @property
    def frames(self) -> int | None:
        """Length in video frames, once known (a live utterance knows it when finished)."""
        return self.received if self.finished else None

    @property
    def seconds(self) -> float:
        return self.samples_16k / (SAMPLES_PER_FRAME * 25)

    def ready(self, index: int) -> bool:
        return index < self.received

    def window(self, index: int) -> bytes | None:
        """Frame `index`'s model window as float16 bytes (the wire format), if still held."""
        if self._file_windows is not None:
            return self._file_windows[index].astype(np.float16).tobytes()
        window = self._live_windows.get(index)
        return None if window is None else window.tobytes()

    def forget_before(self, index: int) -> None:
        """Live windows of frames already shown are never needed again."""
        for old in [key for key in self._live_windows if key < index]:
            del self._live_windows[old]
        if index > self.shown:
            self.shown = index
            self._wake()

    def drop(self) -> None:
        self.dropped = True
        self._live_windows.clear()
        self._wake()

    async def played_more(self) -> None:
        """Wait until more of it has played (or it was dropped): back-pressure for a live feed."""
        if self._progress is None:
            self._progress = asyncio.get_running_loop().create_future()
        await self._progress

    def _wake(self) -> None:
        if self._progress is not None and not self._progress.done():
            self._progress.set_result(None)
        self._progress = None

    def add_live(self, windows: list[np.ndarray], playback: np.ndarray, samples_16k: int) -> None:
        for window in windows:
            self._live_windows[self.received] = window.astype(np.float16)
            self.received += 1
        self.playback.append(playback)
        self.samples_16k += samples_16k

    def finish(self, windows: list[np.ndarray], playback: np.ndarray) -> None:
        self.add_live(windows, playback, 0)
        self.finished = True
        frames = frame_count(self.samples_16k)
        self.received = min(self.received, frames)
        self.forget_before(0)
        for extra in [key for key in self._live_windows if key >= frames]:
            del self._live_windows[extra]
        self.playback.fit(frames * PLAYBACK_PER_FRAME)

    def chunk(self, index: int) -> np.ndarray:
        """Playback chunk `index` (20 ms) of this utterance; silence where none has arrived."""
        return self.playback.chunk(index * CHUNK_SAMPLES, CHUNK_SAMPLES)


def _fit(samples: np.ndarray, length: int) -> np.ndarray:
    if samples.size >= length:
        return samples[:length]
    return np.concatenate([samples, np.zeros(length - samples.size, samples.dtype)])


@dataclass
class SpeechEvent:
    kind: str  # "speech_start" | "speech_end" | "interrupted"
    utterance: int
    frame: int


class SpeechTimeline:
    def __init__(self, lead_frames: int, max_queued: int) -> None:
        self.lead_frames = lead_frames
        self.max_queued = max_queued
        self._queue: deque[Utterance] = deque()
        self._frame = 0  # the latest frame either track has reached
        self.events: deque[SpeechEvent] = deque(maxlen=64)
        self.stalled_frames = 0
        self._gap_frame = -1  # a frame a starved live utterance skipped: silence and idle

    @property
    def speaking(self) -> bool:
        head = self._queue[0] if self._queue else None
        return head is not None and head.start is not None and head.start <= self._frame

    def ensure_room(self, pending: int = 0) -> None:
        """Raise QueueFullError unless one more utterance (after `pending` others) fits."""
        if len(self._queue) + pending >= self.max_queued:
            raise QueueFullError(f"{self.max_queued} utterances already queued")

    def queued_seconds(self) -> float:
        return sum(u.seconds for u in self._queue)

    def add(self, utterance: Utterance, extra_lead: int = 0) -> None:
        """Queue after what is already playing; the first frame is `lead` frames out."""
        self.ensure_room()
        self._queue.append(utterance)
        self._schedule(extra_lead)

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
        for utterance in dropped:
            utterance.drop()
            self.events.append(SpeechEvent("interrupted", utterance.id, self._frame))
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
                self.events.append(SpeechEvent("speech_end", head.id, frame))
                self._schedule()
                continue
            if not head.finished and not head.ready(index):
                self._delay_from(head)
                self._gap_frame = frame
                self.stalled_frames += 1
                return
            if index == 0:
                self.events.append(SpeechEvent("speech_start", head.id, frame))
            head.forget_before(index)
            return

    def _delay_from(self, head: Utterance) -> None:
        for utterance in self._queue:
            if utterance.start is not None:
                utterance.start += 1
            if utterance is not head and utterance.start is None:
                break

    def plan(self, frame: int) -> tuple[Utterance, int] | None:
        """The utterance frame shown at session frame `frame` (present or ahead), if any."""
        if frame == self._gap_frame:
            return None
        for utterance in self._queue:
            if utterance.start is None or utterance.start > frame:
                return None
            index = frame - utterance.start
            frames = utterance.frames
            if frames is None or index < frames:
                return utterance, index
        return None

    def audio_chunk(self, chunk: int) -> np.ndarray:
        """48 kHz s16 samples for session chunk `chunk` (two per video frame)."""
        planned = self.plan(chunk // CHUNKS_PER_FRAME)
        if planned is None:
            return SILENT_CHUNK
        utterance, index = planned
        return utterance.chunk(index * CHUNKS_PER_FRAME + chunk % CHUNKS_PER_FRAME)
