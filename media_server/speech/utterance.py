"""One thing said: its per-frame model windows and its 48 kHz playback, as they become known.

A file is known whole at once; a live utterance (streamed TTS, a microphone) grows as audio
arrives, and keeps only the windows it has received and not yet shown.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field

import numpy as np

from lipstream.timebase import PLAYBACK_CHUNK_SAMPLES, PLAYBACK_SAMPLES_PER_FRAME, SPEECH_RATE, speech_frames
from media_server.speech.features import model_windows

_ids = itertools.count(1)


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
    queued_at: int = 0  # session video frame when it was queued
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
        utterance = cls("file", samples_16k=samples_16k, finished=True, received=len(windows), _file_windows=windows)
        utterance.playback = PlaybackBuffer(_fit(playback, len(windows) * PLAYBACK_SAMPLES_PER_FRAME))
        return utterance

    @property
    def frames(self) -> int | None:
        """Length in video frames, once known (a live utterance knows it when finished)."""
        return self.received if self.finished else None

    @property
    def seconds(self) -> float:
        return self.samples_16k / SPEECH_RATE

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
        frames = speech_frames(self.samples_16k)
        self.received = min(self.received, frames)
        self.forget_before(0)
        for extra in [key for key in self._live_windows if key >= frames]:
            del self._live_windows[extra]
        self.playback.fit(frames * PLAYBACK_SAMPLES_PER_FRAME)

    def chunk(self, index: int) -> np.ndarray:
        """Playback chunk `index` (20 ms) of this utterance; silence where none has arrived."""
        return self.playback.chunk(index * PLAYBACK_CHUNK_SAMPLES, PLAYBACK_CHUNK_SAMPLES)


def _fit(samples: np.ndarray, length: int) -> np.ndarray:
    if samples.size >= length:
        return samples[:length]
    return np.concatenate([samples, np.zeros(length - samples.size, samples.dtype)])
