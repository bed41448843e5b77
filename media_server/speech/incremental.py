"""Model windows for a live feed, emitted as soon as the model's declared look-ahead allows."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from lipstream.contract import (
    AUDIO_WINDOW_SHAPE,
    MEL_SPAN,
    N_MELS,
    VECTOR_SIZE,
    WINDOW_FRAMES,
    WINDOW_FRAMES_AFTER,
    WINDOW_FRAMES_BEFORE,
)
from lipstream.timebase import SPEECH_SAMPLES_PER_FRAME, speech_frames
from media_server.speech.features import FeatureExtractor
from media_server.speech.mel import HOP, N_FFT, SILENCE, as_samples, frames_to_mel, mel_start, mel_windows, preemphasis


class IncrementalFeatures:
    """Model windows for a live feed, emitted as soon as the declared look-ahead allows.

    Frame i is emitted once audio through the end of frame i + lookahead_frames plus half an
    STFT window (400 samples) has arrived. Each vector is computed once: vector j sees the audio
    through the end of frame j + lookahead - min(7, lookahead) (mel columns beyond are SILENCE),
    and in frame i's window the vectors past frame i + min(7, lookahead) are zero. The output
    therefore depends on the audio alone, never on how it was chunked; with a look-ahead of 11
    frames or more it equals FeatureExtractor.windows (to float32 rounding). finish() ends the
    utterance and leaves the object ready for the next one.
    """

    def __init__(self, extractor: FeatureExtractor, lookahead_frames: int) -> None:
        if not isinstance(lookahead_frames, int) or lookahead_frames < 0:
            raise ValueError(f"lookahead_frames must be a non-negative integer, got {lookahead_frames!r}")
        self._extractor = extractor
        self._lookahead = lookahead_frames
        self._ahead = min(WINDOW_FRAMES_AFTER, lookahead_frames)  # vectors past frame i known in its window
        self._reset()

    def _reset(self) -> None:
        self._previous = 0.0  # last raw sample, for the pre-emphasis of the next chunk
        self._pending = np.zeros(N_FFT // 2, np.float32)  # emphasised audio from 200 * next column - 400
        self._received = 0
        self._next_column = 0
        self._mel = np.zeros((N_MELS, 0), np.float32)
        self._mel_first = 0  # absolute index of self._mel's first column
        self._vectors = np.zeros((WINDOW_FRAMES_BEFORE, VECTOR_SIZE), np.float32)
        self._vector_first = -WINDOW_FRAMES_BEFORE  # absolute frame of self._vectors' first row
        self._next_frame = 0
        self._leveller = self._extractor.leveller()

    @property
    def lookahead_frames(self) -> int:
        return self._lookahead

    def samples_needed(self, frame: int) -> int:
        """Audio (samples since the utterance began) that must arrive before `frame` is emitted."""
        return SPEECH_SAMPLES_PER_FRAME * (frame + self._lookahead + 1) + N_FFT // 2

    def push(self, samples_16k: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """(frame index, [32,16,16] window) for every frame that became ready."""
        samples = as_samples(samples_16k)
        if samples.size:
            self._pending = np.concatenate([self._pending, preemphasis(samples, self._previous)])
            self._previous = float(samples[-1])
            self._received += samples.size
        self._add_columns((self._received - N_FFT // 2) // HOP + 1 - self._next_column)
        ready = (self._received - N_FFT // 2) // SPEECH_SAMPLES_PER_FRAME - self._lookahead
        return self._emit(ready, final=False)

    def finish(self) -> list[tuple[int, np.ndarray]]:
        """End of utterance: every remaining frame, the audio zero-padded and the windows silence-padded."""
        total_columns = 1 + self._received // HOP
        missing = HOP * (total_columns - self._next_column - 1) + N_FFT - self._pending.size
        self._pending = np.pad(self._pending, (0, max(0, missing)))
        self._add_columns(total_columns - self._next_column)
        emitted = self._emit(speech_frames(self._received), final=True)
        self._reset()
        return emitted

    def _add_columns(self, count: int) -> None:
        """Compute only the new mel columns, then drop the samples no later column needs."""
        if count <= 0:
            return
        frames = sliding_window_view(self._pending, N_FFT)[::HOP][:count]
        self._mel = np.concatenate([self._mel, frames_to_mel(frames, self._leveller)], axis=1)
        self._pending = self._pending[HOP * count :]
        self._next_column += count

    def _compute_vectors(self, last: int, final: bool) -> None:
        """Vectors up to frame `last`, each masked to the audio it may see, then trim the mel history."""
        first = self._vector_first + len(self._vectors)
        frames = np.arange(first, last + 1)
        if frames.size:
            starts = mel_start(frames)
            windows = mel_windows(self._mel, starts - self._mel_first)
            if not final:
                visible = mel_start(frames + self._lookahead - self._ahead + 1)
                hidden = starts[:, None] + np.arange(MEL_SPAN)[None, :] > visible[:, None]
                windows.transpose(0, 2, 1)[hidden] = SILENCE
            self._vectors = np.concatenate([self._vectors, self._extractor.encode(windows)])
        keep_from = int(mel_start(last + 1)) - self._mel_first
        self._mel = self._mel[:, keep_from:]
        self._mel_first += keep_from

    def _emit(self, end: int, final: bool) -> list[tuple[int, np.ndarray]]:
        """Windows of frames [next_frame, end): vectors i-8 .. i+ahead, zero after that.

        Live, `ahead` is what the look-ahead lets us know; at the end of the utterance every
        vector is known and the frames past the end are zero.
        """
        count = end - self._next_frame
        if count <= 0:
            return []
        ahead = WINDOW_FRAMES_AFTER if final else self._ahead
        self._compute_vectors(end - 1 if final else end - 1 + ahead, final)
        known = WINDOW_FRAMES_BEFORE + 1 + ahead
        rows = self._vectors
        shortfall = end - 1 + ahead - (self._vector_first + len(rows) - 1)
        if shortfall > 0:  # past the end of the utterance
            rows = np.concatenate([rows, np.zeros((shortfall, VECTOR_SIZE), np.float32)])
        offset = self._next_frame - WINDOW_FRAMES_BEFORE - self._vector_first
        spans = sliding_window_view(rows, known, axis=0)[offset : offset + count]
        windows = np.zeros((count, WINDOW_FRAMES, VECTOR_SIZE), np.float32)
        windows[:, :known] = spans.transpose(0, 2, 1)
        frames = range(self._next_frame, end)
        self._next_frame = end
        drop = end - WINDOW_FRAMES_BEFORE - self._vector_first
        self._vectors = self._vectors[drop:]
        self._vector_first += drop
        shaped = windows.reshape(count, *AUDIO_WINDOW_SHAPE)
        return list(zip(frames, shaped))
