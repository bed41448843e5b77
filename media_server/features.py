"""SyncTalk_2D audio features: 16 kHz speech -> one [32,16,16] model window per 25 fps video frame.

Pipeline (DESIGN.md, "The model contract"): pre-emphasis, centred STFT, 80-band Slaney mel,
dB normalised to [-4, 4]; video frame i reads the 16 mel columns from int(3.2 i), an encoder
turns that [80,16] window into a 512-d vector, and the model window of frame i stacks the
vectors of frames i-8 .. i+7 (zeros outside the utterance).

Numpy only: librosa is used by the tests as the reference, never at run time.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
SAMPLES_PER_FRAME = 640  # 25 fps
N_FFT = 800
HOP = 200
N_MELS = 80
FMIN = 55.0
FMAX = 7600.0
PREEMPHASIS = 0.97
MEL_SPAN = 16  # mel columns read per video frame
VECTOR_SIZE = 512
FRAMES_BEFORE = 8  # the model window holds frames i-8 .. i+7
FRAMES_AFTER = 7
WINDOW_FRAMES = FRAMES_BEFORE + 1 + FRAMES_AFTER
MODEL_WINDOW_SHAPE = (32, 16, 16)
SILENCE = -4.0  # normalised mel value of digital silence and of columns past the audio
ENERGY_COMPONENT = 0  # vector component holding the energy of the frame's own 40 ms
PROJECTION_SEED = 20240611
ENCODER_BATCH = 64

Encoder = Callable[[np.ndarray], np.ndarray]


class EncoderError(ValueError):
    """The configured ONNX audio encoder is missing, unreadable or has the wrong shape."""


def frame_count(n_samples: int) -> int:
    """Video frames covered by `n_samples` of 16 kHz audio (a partial last frame counts)."""
    return -(-n_samples // SAMPLES_PER_FRAME)


def mel_start(frames: np.ndarray | int) -> np.ndarray:
    """First mel column of each frame's window: int(3.2 i), in exact integer arithmetic."""
    return (np.asarray(frames) * 16) // 5


def _as_samples(samples: np.ndarray) -> np.ndarray:
    array = np.asarray(samples, dtype=np.float32)
    if array.ndim != 1:
        raise ValueError(f"speech samples must be a 1-D mono array, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError("speech samples contain NaN or infinity")
    return array


def preemphasis(samples: np.ndarray, previous: float = 0.0) -> np.ndarray:
    """y[n] = x[n] - 0.97 x[n-1]; `previous` is x[-1], the last sample of the preceding chunk."""
    out = samples.copy()
    out[:1] -= np.float32(PREEMPHASIS) * np.float32(previous)
    out[1:] -= np.float32(PREEMPHASIS) * samples[:-1]
    return out


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's scale: linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz / (200.0 / 3)
    logarithmic = 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(hz >= 1000.0, logarithmic, linear)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    linear = mel * (200.0 / 3)
    logarithmic = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0))
    return np.where(mel >= 15.0, logarithmic, linear)


@functools.cache
def mel_filter_bank() -> np.ndarray:
    """[80, 401] triangular Slaney-normalised filters (what librosa.filters.mel builds by default)."""
    fft_hz = np.linspace(0.0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    edges_hz = _mel_to_hz(np.linspace(_hz_to_mel(FMIN), _hz_to_mel(FMAX), N_MELS + 2))
    widths = np.diff(edges_hz)
    offsets = edges_hz[:, None] - fft_hz[None, :]
    rising = -offsets[:-2] / widths[:-1, None]
    falling = offsets[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (edges_hz[2:] - edges_hz[:-2]))[:, None]
    bank = weights.astype(np.float32)
    bank.flags.writeable = False
    return bank


@functools.cache
def _hann() -> np.ndarray:
    """Periodic Hann, the STFT convention (scipy/librosa fftbins=True)."""
    window = (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)
    window.flags.writeable = False
    return window


def _frames_to_mel(frames: np.ndarray) -> np.ndarray:
    """[K, 800] emphasised sample frames -> [80, K] normalised mel columns."""
    magnitude = np.abs(np.fft.rfft(frames * _hann(), axis=1))
    mel = mel_filter_bank() @ magnitude.T
    db = 20.0 * np.log10(np.maximum(mel, 1e-5)) - 20.0
    return np.clip(8.0 * (db + 100.0) / 100.0 - 4.0, SILENCE, 4.0).astype(np.float32, copy=False)


def _mel(samples: np.ndarray) -> np.ndarray:
    padded = np.pad(preemphasis(samples), N_FFT // 2)
    return _frames_to_mel(sliding_window_view(padded, N_FFT)[::HOP])


def mel_spectrogram(samples: np.ndarray) -> np.ndarray:
    """16 kHz mono speech -> [80, 1 + len // 200] float32, centred frames with zero padding."""
    return _mel(_as_samples(samples))


def mel_windows(mel: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """[K, 80, 16] windows mel[:, s:s+16] for each start s, SILENCE where they run past the end."""
    starts = np.asarray(starts, dtype=np.int64)
    if starts.size == 0:
        return np.zeros((0, N_MELS, MEL_SPAN), np.float32)
    shortfall = int(starts.max()) + MEL_SPAN - mel.shape[1]
    if shortfall > 0:
        mel = np.pad(mel, ((0, 0), (0, shortfall)), constant_values=SILENCE)
    return sliding_window_view(mel, MEL_SPAN, axis=1).transpose(1, 0, 2)[starts]


@functools.cache
def _projection_matrix() -> np.ndarray:
    matrix = np.random.default_rng(PROJECTION_SEED).standard_normal((VECTOR_SIZE - 2, N_MELS * MEL_SPAN), np.float32)
    matrix.flags.writeable = False
    return matrix


def project(windows: np.ndarray) -> np.ndarray:
    """The built-in encoder, a fixed contract that the bundled parametric-mouth model reads.

    v[0] = mean of the first 4 columns (the frame's own 40 ms), v[1] = mean of the whole
    window, v[2:] = W @ window.flatten() / sqrt(1280) with W from PROJECTION_SEED.
    """
    flat = windows.reshape(len(windows), N_MELS * MEL_SPAN)
    vectors = np.empty((len(windows), VECTOR_SIZE), np.float32)
    vectors[:, ENERGY_COMPONENT] = windows[:, :, :4].mean(axis=(1, 2))
    vectors[:, 1] = flat.mean(axis=1)
    vectors[:, 2:] = flat @ _projection_matrix().T
    vectors[:, 2:] /= np.float32(np.sqrt(flat.shape[1]))
    return vectors


class AveEncoder:
    """A user-supplied ONNX audio encoder, [B,1,80,16] -> [B,512], on the CPU."""

    def __init__(self, path: Path) -> None:
        path = Path(path)
        if not path.is_file():
            raise EncoderError(f"audio encoder '{path}' does not exist")
        try:
            import onnxruntime
        except ImportError as exc:
            raise EncoderError("an ONNX audio encoder needs onnxruntime; install lipstream[cpu]") from exc
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1  # many sessions share the edge's cores
        try:
            self._session = onnxruntime.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime's load errors share no base class narrower than Exception
            raise EncoderError(f"audio encoder '{path}' cannot be loaded: {exc}") from exc
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        fixed_batch = inputs[0].shape[0] if inputs and isinstance(inputs[0].shape[0], int) else None
        if len(inputs) != 1 or list(inputs[0].shape[1:]) != [1, N_MELS, MEL_SPAN]:
            raise EncoderError(
                f"audio encoder '{path}' must take one [B,1,{N_MELS},{MEL_SPAN}] input, "
                f"got {[i.shape for i in inputs]}"
            )
        if not outputs or list(outputs[0].shape[1:]) != [VECTOR_SIZE]:
            raise EncoderError(f"audio encoder '{path}' must output [B,{VECTOR_SIZE}], got {outputs[0].shape}")
        self._path = path
        self._fixed_batch = fixed_batch  # an export with a fixed batch size gets padded batches
        self._batch = fixed_batch or ENCODER_BATCH
        self._input = inputs[0].name
        self._output = outputs[0].name
        log.info("audio encoder %s loaded", path)

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        vectors = np.empty((len(windows), VECTOR_SIZE), np.float32)
        for start in range(0, len(windows), self._batch):
            batch = np.ascontiguousarray(windows[start : start + self._batch, None], dtype=np.float32)
            count = len(batch)
            if self._fixed_batch and count < self._fixed_batch:
                batch = np.concatenate([batch, np.zeros((self._fixed_batch - count, *batch.shape[1:]), np.float32)])
            (result,) = self._session.run([self._output], {self._input: batch})
            if result.shape != (len(batch), VECTOR_SIZE):
                raise EncoderError(
                    f"audio encoder '{self._path}' returned shape {result.shape} for {len(batch)} windows"
                )
            vectors[start : start + count] = result[:count]
        return vectors


def model_windows(vectors: np.ndarray) -> np.ndarray:
    """[N,512] per-frame vectors -> [N,32,16,16]: frames i-8 .. i+7, zero outside [0, N).

    A read-only view of one zero-padded copy of the vectors.
    """
    n = len(vectors)
    if n == 0:
        return np.zeros((0, *MODEL_WINDOW_SHAPE), np.float32)
    padded = np.zeros((FRAMES_BEFORE + n + FRAMES_AFTER, VECTOR_SIZE), np.float32)
    padded[FRAMES_BEFORE : FRAMES_BEFORE + n] = vectors
    rows = sliding_window_view(padded.reshape(-1), WINDOW_FRAMES * VECTOR_SIZE)[::VECTOR_SIZE]
    return rows.reshape(n, *MODEL_WINDOW_SHAPE)


class FeatureExtractor:
    """Whole-utterance features; stateless, so one instance serves every session."""

    def __init__(self, encoder: Path | None = None) -> None:
        self._encoder: Encoder = project if encoder is None else AveEncoder(encoder)

    def encode(self, windows: np.ndarray) -> np.ndarray:
        """[K,80,16] mel windows -> [K,512] vectors."""
        if windows.ndim != 3 or windows.shape[1:] != (N_MELS, MEL_SPAN):
            raise ValueError(f"mel windows must have shape [K,{N_MELS},{MEL_SPAN}], got {windows.shape}")
        return self._encoder(windows)

    def vectors(self, samples_16k: np.ndarray) -> np.ndarray:
        """[N,512], one vector per video frame, N = ceil(len / 640)."""
        samples = _as_samples(samples_16k)
        starts = mel_start(np.arange(frame_count(samples.size)))
        return self.encode(mel_windows(_mel(samples), starts))

    def windows(self, samples_16k: np.ndarray) -> np.ndarray:
        """[N,32,16,16] model inputs, one per video frame."""
        return model_windows(self.vectors(samples_16k))


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
        self._ahead = min(FRAMES_AFTER, lookahead_frames)  # vectors past frame i known in its window
        self._reset()

    def _reset(self) -> None:
        self._previous = 0.0  # last raw sample, for the pre-emphasis of the next chunk
        self._pending = np.zeros(N_FFT // 2, np.float32)  # emphasised audio from 200 * next column - 400
        self._received = 0
        self._next_column = 0
        self._mel = np.zeros((N_MELS, 0), np.float32)
        self._mel_first = 0  # absolute index of self._mel's first column
        self._vectors = np.zeros((FRAMES_BEFORE, VECTOR_SIZE), np.float32)
        self._vector_first = -FRAMES_BEFORE  # absolute frame of self._vectors' first row
        self._next_frame = 0

    def samples_needed(self, frame: int) -> int:
        """Audio (samples since the utterance began) that must arrive before `frame` is emitted."""
        return SAMPLES_PER_FRAME * (frame + self._lookahead + 1) + N_FFT // 2

    def push(self, samples_16k: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """(frame index, [32,16,16] window) for every frame that became ready."""
        samples = _as_samples(samples_16k)
        if samples.size:
            self._pending = np.concatenate([self._pending, preemphasis(samples, self._previous)])
            self._previous = float(samples[-1])
            self._received += samples.size
        self._add_columns((self._received - N_FFT // 2) // HOP + 1 - self._next_column)
        ready = (self._received - N_FFT // 2) // SAMPLES_PER_FRAME - self._lookahead
        return self._emit(ready, final=False)

    def finish(self) -> list[tuple[int, np.ndarray]]:
        """End of utterance: every remaining frame, the audio zero-padded and the windows silence-padded."""
        total_columns = 1 + self._received // HOP
        missing = HOP * (total_columns - self._next_column - 1) + N_FFT - self._pending.size
        self._pending = np.pad(self._pending, (0, max(0, missing)))
        self._add_columns(total_columns - self._next_column)
        emitted = self._emit(frame_count(self._received), final=True)
        self._reset()
        return emitted

    def _add_columns(self, count: int) -> None:
        """Compute only the new mel columns, then drop the samples no later column needs."""
        if count <= 0:
            return
        frames = sliding_window_view(self._pending, N_FFT)[::HOP][:count]
        self._mel = np.concatenate([self._mel, _frames_to_mel(frames)], axis=1)
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
        ahead = FRAMES_AFTER if final else self._ahead
        self._compute_vectors(end - 1 if final else end - 1 + ahead, final)
        known = FRAMES_BEFORE + 1 + ahead
        rows = self._vectors
        shortfall = end - 1 + ahead - (self._vector_first + len(rows) - 1)
        if shortfall > 0:  # past the end of the utterance
            rows = np.concatenate([rows, np.zeros((shortfall, VECTOR_SIZE), np.float32)])
        offset = self._next_frame - FRAMES_BEFORE - self._vector_first
        spans = sliding_window_view(rows, known, axis=0)[offset : offset + count]
        windows = np.zeros((count, WINDOW_FRAMES, VECTOR_SIZE), np.float32)
        windows[:, :known] = spans.transpose(0, 2, 1)
        frames = range(self._next_frame, end)
        self._next_frame = end
        drop = end - FRAMES_BEFORE - self._vector_first
        self._vectors = self._vectors[drop:]
        self._vector_first += drop
        shaped = windows.reshape(count, *MODEL_WINDOW_SHAPE)
        return list(zip(frames, shaped))
