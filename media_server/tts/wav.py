"""A WAV stream's format, read from its header as the bytes arrive (espeak-ng and speech servers stream
WAV whose sizes are placeholders: the data simply runs until the stream ends)."""

from __future__ import annotations

import struct

from media_server.speech.audio import PcmFormat
from media_server.tts.engine import ByteStream, TtsFailed

MAX_CHUNK_BEFORE_DATA = 64 * 1024  # metadata chunks skipped before the audio; anything larger is not speech
WAVE_FORMAT_PCM = 1
WAVE_FORMAT_FLOAT = 3
WAVE_FORMAT_EXTENSIBLE = 0xFFFE


async def read_wav_format(stream: ByteStream) -> PcmFormat:
    """Read up to the start of the samples; TtsFailed for anything but 16-bit or float PCM WAV."""
    try:
        riff = await stream.readexactly(12)
        if riff[:4] != b"RIFF" or riff[8:12] != b"WAVE":
            raise TtsFailed("the engine's audio is not WAV")
        pcm: PcmFormat | None = None
        while True:
            kind, size = struct.unpack("<4sI", await stream.readexactly(8))
            if kind == b"data":
                if pcm is None:
                    raise TtsFailed("the engine's WAV has no format before its samples")
                return pcm
            if size > MAX_CHUNK_BEFORE_DATA:
                raise TtsFailed(f"the engine's WAV has a {size}-byte {kind!r} chunk before its samples")
            body = await stream.readexactly(size + size % 2)
            if kind == b"fmt ":
                pcm = _format(body)
    except (EOFError, ConnectionError) as exc:  # asyncio's IncompleteReadError is an EOFError
        raise TtsFailed("the engine's audio ended inside its WAV header") from exc


def _format(body: bytes) -> PcmFormat:
    if len(body) < 16:
        raise TtsFailed("the engine's WAV format chunk is short")
    tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
    if tag == WAVE_FORMAT_EXTENSIBLE and len(body) >= 26:
        tag = struct.unpack("<H", body[24:26])[0]
    kinds = {(WAVE_FORMAT_PCM, 16): "s16le", (WAVE_FORMAT_FLOAT, 32): "f32le"}
    if (tag, bits) not in kinds:
        raise TtsFailed(f"the engine's WAV is format {tag} at {bits} bits; 16-bit PCM or 32-bit float is needed")
    try:
        return PcmFormat(rate, kinds[tag, bits], channels)
    except ValueError as exc:
        raise TtsFailed(f"the engine's WAV cannot be spoken: {exc}") from exc
