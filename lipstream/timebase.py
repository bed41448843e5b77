"""The media timebase every tier shares: one video frame rate, the audio rates, the RTP clocks.

A session's clock counts 25 fps video frames; everything else is derived from it. Speech is
analysed at 16 kHz (640 samples per frame) and played at 48 kHz in 20 ms chunks (two per
frame), so video frame n and audio chunks 2n and 2n+1 come from the same instant.
"""

from __future__ import annotations

from fractions import Fraction

VIDEO_FPS = 25
FRAME_SECONDS = 1.0 / VIDEO_FPS

# Speech analysis (the model's audio features).
SPEECH_RATE = 16_000
SPEECH_SAMPLES_PER_FRAME = SPEECH_RATE // VIDEO_FPS  # 640

# Speech playback (the WebRTC audio track).
PLAYBACK_RATE = 48_000
PLAYBACK_CHUNK_SAMPLES = 960  # 20 ms, one WebRTC audio frame
PLAYBACK_CHUNK_SECONDS = PLAYBACK_CHUNK_SAMPLES / PLAYBACK_RATE
PLAYBACK_SAMPLES_PER_FRAME = PLAYBACK_RATE // VIDEO_FPS  # 1920
CHUNKS_PER_FRAME = PLAYBACK_SAMPLES_PER_FRAME // PLAYBACK_CHUNK_SAMPLES  # 2

# RTP clocks: video pts at 90 kHz, audio pts in playback samples.
VIDEO_CLOCK_HZ = 90_000
VIDEO_TIME_BASE = Fraction(1, VIDEO_CLOCK_HZ)
PTS_PER_FRAME = VIDEO_CLOCK_HZ // VIDEO_FPS  # 3600
AUDIO_TIME_BASE = Fraction(1, PLAYBACK_RATE)


def speech_frames(n_samples: int) -> int:
    """Video frames covered by `n_samples` of 16 kHz speech (a partial last frame counts)."""
    return -(-n_samples // SPEECH_SAMPLES_PER_FRAME)
