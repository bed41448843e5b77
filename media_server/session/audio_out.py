"""A session's audio packets: Opus from its own encoder while something is said, shared silence otherwise.

aiortc sends a track's `av.Packet`s as they are, so the session encodes its speech itself and
hands over finished Opus packets. While nobody speaks every session sends the same packet, the one
libopus makes for 20 ms of digital silence (3 bytes), and only every `DTX_CHUNKS`th one, as Opus
DTX does (the sequence numbers stay continuous, the timestamps jump; receivers play silence in
between): no session encodes anything, and most silent chunks cost no packet at all. Every chunk
goes out again as soon as speech is queued, before it starts: a browser retunes its A/V sync when
audio resumes after DTX, and doing so at the speech's first frame froze its video for 200 ms. Speech gets
a fresh encoder, which runs on for `TAIL_CHUNKS` after the speech (it holds 6.5 ms of look-ahead,
and its tail fades out naturally) and is then dropped. Encoding a chunk takes about 0.15 ms, less
than handing it to a thread would cost, so it runs on the event loop.
"""

from __future__ import annotations

import fractions
import functools

import av
import numpy as np

from lipstream.timebase import AUDIO_TIME_BASE, PLAYBACK_CHUNK_SAMPLES, PLAYBACK_RATE
from media_server.speech.timeline import SILENT_CHUNK

BITRATE = 64_000  # mono speech
TAIL_CHUNKS = 5
DTX_CHUNKS = 20  # one silence packet per 400 ms, as Opus DTX sends


def _opus_encoder() -> av.AudioCodecContext:
    codec = av.CodecContext.create("libopus", "w")
    codec.sample_rate = PLAYBACK_RATE
    codec.format = "s16"
    codec.layout = "mono"
    codec.bit_rate = BITRATE
    codec.time_base = fractions.Fraction(1, PLAYBACK_RATE)
    codec.options = {"application": "voip"}
    return codec


def _encode(codec: av.AudioCodecContext, samples: np.ndarray, pts: int) -> list[av.Packet]:
    frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate, frame.pts, frame.time_base = PLAYBACK_RATE, pts, AUDIO_TIME_BASE
    return list(codec.encode(frame))


@functools.cache
def silence() -> bytes:
    """What libopus sends for 20 ms of digital silence once it has settled."""
    codec = _opus_encoder()
    packets = [p for k in range(4) for p in _encode(codec, SILENT_CHUNK, k * PLAYBACK_CHUNK_SAMPLES)]
    return bytes(packets[-1])


class AudioOut:
    def __init__(self) -> None:
        self._encoder: av.AudioCodecContext | None = None
        self._quiet = 0  # silent chunks encoded since the last speech
        self._sent = -DTX_CHUNKS  # the last chunk sent

    @property
    def encoding(self) -> bool:
        return self._encoder is not None

    @property
    def next_silence(self) -> int:
        """The next silent chunk that is sent, while nothing is queued."""
        return self._sent + DTX_CHUNKS

    def packet(self, chunk: int, samples: np.ndarray, speech_queued: bool) -> av.Packet | None:
        """Session chunk `chunk` (the timeline's SILENT_CHUNK when nothing is said) as one Opus packet,
        or None for a silent chunk that goes unsent (never while speech is queued)."""
        pts = chunk * PLAYBACK_CHUNK_SAMPLES
        if samples is SILENT_CHUNK and self._encoder is None:
            if not speech_queued and chunk - self._sent < DTX_CHUNKS:
                return None
            data = silence()
        else:
            data = self._encoded(samples, pts)
        self._sent = chunk
        packet = av.Packet(data)
        packet.pts, packet.time_base = pts, AUDIO_TIME_BASE
        return packet

    def _encoded(self, samples: np.ndarray, pts: int) -> bytes:
        if self._encoder is None:
            self._encoder = _opus_encoder()
        self._quiet = self._quiet + 1 if samples is SILENT_CHUNK else 0
        packets = _encode(self._encoder, samples, pts)
        if self._quiet >= TAIL_CHUNKS:
            self._encoder = None
        return bytes(packets[-1]) if packets else silence()
