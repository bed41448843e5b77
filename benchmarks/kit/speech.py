"""Speech-like test audio, synthetic so that its timing is known exactly.

Two characters: `voiced_bursts` alternates voice and silence at a fixed rate (the envelope
a test can correlate against is `burst_envelope`); `random_syllables` in a `buzzy_voice`
is irregular, so that a cross-correlation with it has a single peak. `encode` packs either
into any container PyAV writes, as a client would upload it.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import NamedTuple

import av
import numpy as np

from lipstream.timebase import SPEECH_RATE

BURST_S = 0.25


class Span(NamedTuple):
    """A voiced stretch of an utterance, in seconds from its start."""

    start: float
    end: float


def voiced_bursts(seconds: float, burst_s: float = BURST_S, rate: int = SPEECH_RATE, seed: int = 0) -> np.ndarray:
    """Voiced bursts (140 Hz pulses + noise) alternating with silence, float32 mono."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    voiced = (np.floor(t / burst_s) % 2 == 0).astype(np.float32)
    pulses = np.sign(np.sin(2 * np.pi * 140 * t)) * 0.25 + rng.normal(0, 0.08, t.size)
    return (pulses * voiced).astype(np.float32)


def burst_envelope(seconds: float, step_s: float, burst_s: float = BURST_S) -> np.ndarray:
    """1 where voiced_bursts() is voiced, per step (sampled at each step's centre)."""
    t = np.arange(int(round(seconds / step_s))) * step_s + step_s / 2
    return (np.floor(t / burst_s) % 2 == 0).astype(np.float32)


def random_syllables(seconds: float, seed: int = 0) -> list[Span]:
    """Voiced bursts of syllable length (120-320 ms) and pauses (80-350 ms), irregular so that
    cross-correlation has a single peak. The first burst starts at 0."""
    rng = np.random.default_rng(seed)
    spans, t = [], 0.0
    while t < seconds:
        end = min(seconds, t + rng.uniform(0.12, 0.32))
        spans.append(Span(t, end))
        t = end + rng.uniform(0.08, 0.35)
    return spans


def buzzy_voice(spans: Sequence[Span], seconds: float, rate: int = SPEECH_RATE, seed: int = 0) -> np.ndarray:
    """A buzzy voice (a sawtooth with a wandering pitch, plus breath) in `spans`, silence elsewhere, float32."""
    t = np.arange(int(round(seconds * rate))) / rate
    gate = np.zeros(t.size, np.float32)
    for start, end in spans:
        gate[int(start * rate) : int(end * rate)] = 1.0
    ramp = np.hanning(int(0.01 * rate) + 1)
    gate = np.convolve(gate, ramp / ramp.sum(), mode="same")  # 10 ms fades, no clicks
    pitch = 125.0 + 20.0 * np.sin(2 * np.pi * 1.7 * t)
    cycles = np.cumsum(pitch) / rate
    voice = 2.0 * (cycles % 1.0) - 1.0 + np.random.default_rng(seed).normal(0.0, 0.1, t.size)
    return (0.3 * gate * voice).astype(np.float32)


def syllables(seconds: float, rate: int = SPEECH_RATE, seed: int = 0) -> np.ndarray:
    """Irregular syllables in a buzzy voice: speech whose energy varies, when its timing does not matter."""
    return buzzy_voice(random_syllables(seconds, seed), seconds, rate, seed)


def s16(samples: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] as 16-bit PCM, the format uploads and live feeds carry."""
    return (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")


def encode(samples: np.ndarray, container: str = "wav", codec: str = "pcm_s16le", rate: int = SPEECH_RATE) -> bytes:
    """Mono float samples encoded into `container` with `codec` (WAV by default, the simplest upload)."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=container) as output:
        stream = output.add_stream(codec, rate=rate, layout="mono")
        if not isinstance(stream, av.AudioStream):
            raise ValueError(f"{codec} is not an audio codec")
        frame = av.AudioFrame.from_ndarray(s16(samples).reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            output.mux(packet)
    return buffer.getvalue()
