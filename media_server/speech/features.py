"""Per-frame model windows of whole utterances: 16 kHz speech -> one [32,16,16] window per video frame.

Frame i's mel window (`mel`) goes through the audio encoder (`encoders`) to a 512-d vector,
and frame i's model window stacks the vectors of frames i-8 .. i+7, zeros outside the utterance
(`lipstream.contract`). Live feeds get the same windows incrementally (`incremental`).
"""

from __future__ import annotations

from pathlib import Path

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
from lipstream.timebase import speech_frames
from media_server.config import LevellingConfig
from media_server.speech.encoders import AveEncoder, Encoder, project
from media_server.speech.leveller import Leveller
from media_server.speech.mel import as_samples, mel_spectrogram, mel_start, mel_windows


def model_windows(vectors: np.ndarray) -> np.ndarray:
    """[N,512] per-frame vectors -> [N,32,16,16]: frames i-8 .. i+7, zero outside [0, N).

    A read-only view of one zero-padded copy of the vectors.
    """
    n = len(vectors)
    if n == 0:
        return np.zeros((0, *AUDIO_WINDOW_SHAPE), np.float32)
    padded = np.zeros((WINDOW_FRAMES_BEFORE + n + WINDOW_FRAMES_AFTER, VECTOR_SIZE), np.float32)
    padded[WINDOW_FRAMES_BEFORE : WINDOW_FRAMES_BEFORE + n] = vectors
    rows = sliding_window_view(padded.reshape(-1), WINDOW_FRAMES * VECTOR_SIZE)[::VECTOR_SIZE]
    return rows.reshape(n, *AUDIO_WINDOW_SHAPE)


class FeatureExtractor:
    """Whole-utterance features; stateless, so one instance serves every session.

    With `level`, each utterance's mel columns are levelled (`leveller`) before they are encoded.
    """

    def __init__(self, encoder: Path | None = None, level: LevellingConfig | None = None) -> None:
        self._encoder: Encoder = project if encoder is None else AveEncoder(encoder)
        self._level = level

    def leveller(self) -> Leveller | None:
        """A fresh leveller for one utterance, or None when the features are not levelled."""
        return None if self._level is None else Leveller(self._level)

    def encode(self, windows: np.ndarray) -> np.ndarray:
        """[K,80,16] mel windows -> [K,512] vectors."""
        if windows.ndim != 3 or windows.shape[1:] != (N_MELS, MEL_SPAN):
            raise ValueError(f"mel windows must have shape [K,{N_MELS},{MEL_SPAN}], got {windows.shape}")
        return self._encoder(windows)

    def vectors(self, samples_16k: np.ndarray) -> np.ndarray:
        """[N,512], one vector per video frame, N = ceil(len / 640)."""
        samples = as_samples(samples_16k)
        starts = mel_start(np.arange(speech_frames(samples.size)))
        return self.encode(mel_windows(mel_spectrogram(samples, self.leveller()), starts))

    def windows(self, samples_16k: np.ndarray) -> np.ndarray:
        """[N,32,16,16] model inputs, one per video frame."""
        return model_windows(self.vectors(samples_16k))
