"""Speech-like test audio: a voiced pulse train with noise, in bursts, encoded by PyAV."""

from __future__ import annotations

import io

import av
import numpy as np

RATE = 16000


def speech_like(seconds: float, burst_s: float = 0.25, rate: int = RATE, seed: int = 0) -> np.ndarray:
    """Voiced bursts (140 Hz pulses + noise) alternating with silence, float32 mono."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    voiced = (np.floor(t / burst_s) % 2 == 0).astype(np.float32)
    pulses = np.sign(np.sin(2 * np.pi * 140 * t)) * 0.25 + rng.normal(0, 0.08, t.size)
    return (pulses * voiced).astype(np.float32)


def burst_envelope(seconds: float, step_s: float, burst_s: float = 0.25) -> np.ndarray:
    """1 where speech_like() is voiced, per step."""
    t = np.arange(int(round(seconds / step_s))) * step_s + step_s / 2
    return (np.floor(t / burst_s) % 2 == 0).astype(np.float32)


def encode(samples: np.ndarray, container: str = "wav", codec: str = "pcm_s16le", rate: int = RATE) -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=container) as output:
        stream = output.add_stream(codec, rate=rate, layout="mono")
        pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            output.mux(packet)
        for packet in stream.encode(None):
            output.mux(packet)
    return buffer.getvalue()
