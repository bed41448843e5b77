"""The mel spectrogram of SyncTalk_2D's audio features, in numpy.

16 kHz speech, pre-emphasis 0.97, centred STFT (n_fft 800, hop 200: 80 columns a second),
80-band Slaney mel from 55 to 7600 Hz, dB with ref 20 and floor -100 normalised to [-4, 4].
Video frame i reads the MEL_SPAN columns from int(3.2 i). librosa is the tests' reference,
never a run-time dependency.
"""

from __future__ import annotations

import functools

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from lipstream.contract import MEL_SPAN, N_MELS
from lipstream.timebase import SPEECH_RATE
from media_server.speech.leveller import Leveller

N_FFT = 800
HOP = 200
FMIN = 55.0
FMAX = 7600.0
PREEMPHASIS = 0.97
SILENCE = -4.0  # normalised mel value of digital silence and of columns past the audio


def mel_start(frames: np.ndarray | int) -> np.ndarray:
    """First mel column of each frame's window: int(3.2 i), in exact integer arithmetic."""
    return (np.asarray(frames) * 16) // 5


def as_samples(samples: np.ndarray) -> np.ndarray:
    """Speech as a 1-D float32 array; ValueError for anything else (several channels, NaN)."""
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


def _hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
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
    fft_hz = np.linspace(0.0, SPEECH_RATE / 2, N_FFT // 2 + 1)
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


@functools.cache
def _level_weights() -> np.ndarray:
    """Per rfft bin: the weight that turns |X|^2 of a Hann-windowed, pre-emphasised frame into the raw
    signal's mean square within the mel range (pre-emphasis undone; DC, rumble and hiss out)."""
    hz = np.linspace(0.0, SPEECH_RATE / 2, N_FFT // 2 + 1)
    emphasis = 1.0 + PREEMPHASIS**2 - 2.0 * PREEMPHASIS * np.cos(2.0 * np.pi * hz / SPEECH_RATE)
    one_sided = np.where((hz > 0) & (hz < SPEECH_RATE / 2), 2.0, 1.0)
    weights = one_sided / (N_FFT * float(np.sum(np.square(_hann(), dtype=np.float64))) * emphasis)
    weights[(hz < FMIN) | (hz > FMAX)] = 0.0
    out = weights.astype(np.float32)
    out.flags.writeable = False
    return out


def _units(mel: np.ndarray) -> np.ndarray:
    """Linear mel magnitudes in the contract's units, not yet clipped (digital silence is -5.6)."""
    db = 20.0 * np.log10(np.maximum(mel, 1e-5)) - 20.0
    return (8.0 * (db + 100.0) / 100.0 - 4.0).astype(np.float32, copy=False)


def _levelled(mel: np.ndarray, magnitude: np.ndarray, leveller: Leveller) -> np.ndarray:
    """The mel columns with the leveller's gains applied (linear, as a gain on the samples would be)."""
    units = _units(mel)
    energy = np.clip(units, SILENCE, 4.0).mean(axis=0)
    active = (units > SILENCE).mean(axis=0)
    level_db = 10.0 * np.log10(np.maximum(np.square(magnitude) @ _level_weights(), 1e-12))
    gains = leveller.gains_db(energy, active, level_db)
    return mel * (10.0 ** (gains / 20.0))[None, :]


def frames_to_mel(frames: np.ndarray, leveller: Leveller | None = None) -> np.ndarray:
    """[K, 800] emphasised sample frames -> [80, K] normalised mel columns, levelled when asked."""
    magnitude = np.abs(np.fft.rfft(frames * _hann(), axis=1))
    mel = mel_filter_bank() @ magnitude.T
    if leveller is not None:
        mel = _levelled(mel, magnitude, leveller)
    return np.clip(_units(mel), SILENCE, 4.0)


def mel_spectrogram(samples: np.ndarray, leveller: Leveller | None = None) -> np.ndarray:
    """16 kHz mono speech -> [80, 1 + len // 200] float32, centred frames with zero padding."""
    padded = np.pad(preemphasis(as_samples(samples)), N_FFT // 2)
    return frames_to_mel(sliding_window_view(padded, N_FFT)[::HOP], leveller)


def mel_windows(mel: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """[K, 80, 16] windows mel[:, s:s+16] for each start s, SILENCE where they run past the end."""
    starts = np.asarray(starts, dtype=np.int64)
    if starts.size == 0:
        return np.zeros((0, N_MELS, MEL_SPAN), np.float32)
    shortfall = int(starts.max()) + MEL_SPAN - mel.shape[1]
    if shortfall > 0:
        mel = np.pad(mel, ((0, 0), (0, shortfall)), constant_values=SILENCE)
    return sliding_window_view(mel, MEL_SPAN, axis=1).transpose(1, 0, 2)[starts]
