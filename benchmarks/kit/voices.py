"""Real synthetic speech at any level: espeak-ng voices, a telephone band, background noise.

The level sweep of the lips bench and tests: speech set to an RMS level in dBFS (RMS 1.0 is
0 dBFS), optionally band-limited to 300-3400 Hz as a phone line carries it.
"""

from __future__ import annotations

import subprocess
from typing import NamedTuple

import numpy as np

from lipstream.timebase import SPEECH_RATE, SPEECH_SAMPLES_PER_FRAME
from media_server.speech.audio import decode_audio

ESPEAK = "espeak-ng"
SENTENCE = (
    "The quick brown fox jumps over the lazy dog. She sells sea shells by the sea shore, "
    "and we talk about the weather all afternoon."
)
PHONE_BAND_HZ = (300.0, 3400.0)
VOICED_WITHIN_DB = 20.0  # a frame this close to the loudest (95th percentile) counts as voiced


class Voice(NamedTuple):
    label: str
    espeak: str  # an espeak-ng voice, `language[+variant]`


VOICES = (Voice("male", "en-us"), Voice("female", "en-us+f3"))


def espeak_wav(voice: str, text: str = SENTENCE) -> bytes:
    """`text` spoken by espeak-ng's `voice`, as the WAV it writes (22.05 kHz, 16-bit; espeak-ng must be installed)."""
    command = [ESPEAK, "--stdout", "-v", voice]
    return subprocess.run(command, input=text.encode(), capture_output=True, check=True, timeout=60).stdout


def espeak(voice: str, text: str = SENTENCE) -> np.ndarray:
    """`text` spoken by espeak-ng's `voice`, 16 kHz mono float32."""
    return decode_audio(espeak_wav(voice, text), SPEECH_RATE)


def rms_dbfs(samples: np.ndarray) -> float:
    return float(10.0 * np.log10(np.mean(np.square(samples, dtype=np.float64)) + 1e-30))


def at_level(samples: np.ndarray, dbfs: float) -> np.ndarray:
    """`samples` scaled to an RMS of `dbfs` (peaks may pass full scale: the features take floats)."""
    return (samples * 10.0 ** ((dbfs - rms_dbfs(samples)) / 20.0)).astype(np.float32)


def phone_band(samples: np.ndarray, rate: int = SPEECH_RATE) -> np.ndarray:
    """Only 300-3400 Hz left, as a telephone line carries speech."""
    spectrum = np.fft.rfft(samples)
    hz = np.fft.rfftfreq(samples.size, 1.0 / rate)
    spectrum[(hz < PHONE_BAND_HZ[0]) | (hz > PHONE_BAND_HZ[1])] = 0.0
    return np.fft.irfft(spectrum, samples.size).astype(np.float32)


def noise(seconds: float, dbfs: float, seed: int = 0) -> np.ndarray:
    """White background noise at an RMS of `dbfs`."""
    white = np.random.default_rng(seed).standard_normal(int(seconds * SPEECH_RATE)).astype(np.float32)
    return at_level(white, dbfs)


def voiced_frames(samples: np.ndarray) -> np.ndarray:
    """Per 25 fps video frame: whether the clean speech is voiced there (within 20 dB of its loudest)."""
    frames = samples.size // SPEECH_SAMPLES_PER_FRAME
    blocks = samples[: frames * SPEECH_SAMPLES_PER_FRAME].reshape(frames, SPEECH_SAMPLES_PER_FRAME)
    level = 10.0 * np.log10(np.mean(np.square(blocks, dtype=np.float64), axis=1) + 1e-30)
    return level >= np.percentile(level, 95) - VOICED_WITHIN_DB
