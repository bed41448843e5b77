"""Speech audio in and out of the edge: decode any file FFmpeg reads, resample live PCM,
and cut 16 kHz speech into the 48 kHz 20 ms chunks the WebRTC audio track sends.

All resampling goes through libswresample (av.AudioResampler), whose filter delay is
compensated, so N samples at rate A become exactly N * B / A samples at rate B once
flushed. While streaming, the 16 kHz -> 48 kHz filter holds back PLAYBACK_RESAMPLER_DELAY
output samples (1 ms) until the next push or the flush.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import av
import numpy as np

from lipstream.timebase import PLAYBACK_CHUNK_SAMPLES, PLAYBACK_RATE, SPEECH_RATE

log = logging.getLogger(__name__)

PLAYBACK_RESAMPLER_DELAY = 48  # measured: samples at 48 kHz held by the filter until flush

# Average the channels when down-mixing; swresample's float default sums them at -3 dB,
# which lets in-phase stereo exceed full scale.
_SWR_OPTIONS = {"rematrix_maxval": "1.0"}

# Live PCM a client may send: anything real speech comes as, and nothing whose resampling
# cost per byte is unbounded (a 1 Hz stream turns 4 KB into hours of 16 kHz samples).
PCM_DTYPES: dict[str, np.dtype] = {"s16le": np.dtype("<i2"), "f32le": np.dtype("<f4")}
PCM_MIN_RATE = 8_000
PCM_MAX_RATE = 192_000
PCM_MAX_CHANNELS = 8


class AudioDecodeError(ValueError):
    """The bytes are not audio FFmpeg can decode."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"cannot decode audio: {reason}")


class AudioTooLongError(ValueError):
    """The audio runs past the caller's duration limit."""


def _mono_resampler(sample_format: str, rate: int, frame_size: int | None = None) -> av.AudioResampler:
    return av.AudioResampler(
        format=sample_format, layout="mono", rate=rate, frame_size=frame_size, options=_SWR_OPTIONS
    )


def _samples(frames: Iterable[av.AudioFrame | None]) -> list[np.ndarray]:
    """Mono frames as 1-D arrays; a pass-through resampler's flush yields None, skipped."""
    return [frame.to_ndarray().reshape(-1) for frame in frames if frame is not None]


def _resample_all(resampler: av.AudioResampler, frames: Iterable[av.AudioFrame]) -> Iterator[np.ndarray]:
    """Lazily, so a caller can stop early; the flush comes last."""
    for frame in frames:
        yield from _samples(resampler.resample(frame))
    yield from _samples(resampler.resample(None))


def concat_samples(parts: list[np.ndarray], dtype: type) -> np.ndarray:
    """Chunks of samples as one array (an empty one of `dtype` for no chunks)."""
    return np.concatenate(parts) if parts else np.zeros(0, dtype)


def _check_rate(name: str, rate: int) -> None:
    if not isinstance(rate, int) or rate <= 0:
        raise ValueError(f"{name} must be a positive integer (Hz), got {rate!r}")


def _decoded_frames(container: av.container.InputContainer, stream: av.AudioStream) -> Iterator[av.AudioFrame]:
    """Decode packet by packet so that one corrupt packet costs its samples, not the file."""
    failures: list[str] = []
    produced = False
    try:
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.FFmpegError as exc:
                failures.append(exc.strerror or str(exc))
                continue
            for frame in frames:
                produced = True
                yield frame
    except av.FFmpegError as exc:
        raise AudioDecodeError(exc.strerror or str(exc)) from exc
    if failures:
        if not produced:
            raise AudioDecodeError(failures[0])
        log.warning("skipped %d undecodable audio packets (%s)", len(failures), failures[0])


def decode_audio(data: bytes, sample_rate: int = SPEECH_RATE, max_seconds: float | None = None) -> np.ndarray:
    """Whole file in memory -> mono float32 in [-1, 1] at `sample_rate`.

    The limit is enforced while decoding, so an oversized upload is rejected without
    decoding (or holding) all of it.
    """
    _check_rate("sample_rate", sample_rate)
    if max_seconds is not None and max_seconds <= 0:
        raise ValueError(f"max_seconds must be positive, got {max_seconds!r}")
    if not data:
        raise AudioDecodeError("no data")
    try:
        container = av.open(io.BytesIO(data), mode="r")
    except av.FFmpegError as exc:
        raise AudioDecodeError(exc.strerror or str(exc)) from exc
    limit = None if max_seconds is None else int(max_seconds * sample_rate)
    parts: list[np.ndarray] = []
    total = 0
    with container:
        if not container.streams.audio:
            raise AudioDecodeError("no audio stream")
        stream = container.streams.audio[0]
        resampler = _mono_resampler("flt", sample_rate)
        try:
            for part in _resample_all(resampler, _decoded_frames(container, stream)):
                parts.append(part)
                total += part.size
                if limit is not None and total > limit:
                    raise AudioTooLongError(f"audio is longer than the {max_seconds:g} s limit")
        except av.FFmpegError as exc:  # e.g. a channel layout the resampler cannot mix down
            raise AudioDecodeError(exc.strerror or str(exc)) from exc
    if total == 0:
        raise AudioDecodeError("the audio stream holds no samples")
    samples = concat_samples(parts, np.float32)
    return np.clip(samples, -1.0, 1.0, out=samples)


@dataclass(frozen=True)
class PcmFormat:
    """Interleaved raw PCM as a live feed declares it; ValueError for anything outside the accepted range."""

    sample_rate: int
    sample_format: str = "s16le"
    channels: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.sample_rate, int) or not PCM_MIN_RATE <= self.sample_rate <= PCM_MAX_RATE:
            raise ValueError(
                f"sample_rate must be a whole number of Hz from {PCM_MIN_RATE} to {PCM_MAX_RATE}, "
                f"got {self.sample_rate!r}"
            )
        if self.sample_format not in PCM_DTYPES:
            raise ValueError(f"format must be one of {sorted(PCM_DTYPES)}, got {self.sample_format!r}")
        if not isinstance(self.channels, int) or not 1 <= self.channels <= PCM_MAX_CHANNELS:
            raise ValueError(f"channels must be 1 to {PCM_MAX_CHANNELS} (interleaved), got {self.channels!r}")

    @property
    def dtype(self) -> np.dtype:
        return PCM_DTYPES[self.sample_format]

    @property
    def frame_bytes(self) -> int:
        """Bytes of one sample on every channel."""
        return self.dtype.itemsize * self.channels

    def seconds(self, n_bytes: int) -> float:
        return n_bytes / (self.frame_bytes * self.sample_rate)


class PcmResampler:
    """Raw PCM chunks of a live feed (e.g. streaming TTS) -> mono float32 at `target_rate`.

    Chunks may split samples anywhere; the partial sample is carried to the next push.
    Channels are averaged here (any count), so the resampler only ever sees mono.
    """

    def __init__(self, pcm: PcmFormat, target_rate: int = SPEECH_RATE) -> None:
        _check_rate("target_rate", target_rate)
        self._pcm = pcm
        self._target_rate = target_rate
        self._reset()

    def _reset(self) -> None:
        self._resampler = _mono_resampler("flt", self._target_rate)
        self._carry: bytes = b""

    def push(self, chunk: bytes) -> np.ndarray:
        """Resampled samples now available (the filter keeps a few back until flush)."""
        pcm = self._pcm
        data = self._carry + chunk if self._carry else chunk
        usable = len(data) - len(data) % pcm.frame_bytes
        self._carry = bytes(data[usable:])
        if usable == 0:
            return np.zeros(0, np.float32)
        samples = np.frombuffer(data, dtype=pcm.dtype, count=usable // pcm.dtype.itemsize).astype(np.float32)
        if pcm.dtype.kind == "i":
            samples /= np.float32(32768.0)
        mono = samples.reshape(-1, pcm.channels).mean(axis=1, dtype=np.float32) if pcm.channels > 1 else samples
        frame = av.AudioFrame.from_ndarray(mono.reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate = pcm.sample_rate
        return concat_samples(_samples(self._resampler.resample(frame)), np.float32)

    def flush(self) -> np.ndarray:
        """End of the feed: the held-back samples; the resampler is then ready for a new feed.

        A trailing partial sample cannot be decoded and is dropped.
        """
        if self._carry:
            log.warning("dropping %d trailing bytes that do not form a whole sample", len(self._carry))
        tail = concat_samples(_samples(self._resampler.resample(None)), np.float32)
        self._reset()
        return tail


class PlaybackChunker:
    """16 kHz float32 speech -> 48 kHz s16 mono chunks of PLAYBACK_CHUNK_SAMPLES for the audio track.

    Sample-exact: N samples in give 3N samples out (plus zero padding of the last chunk),
    so the audio stays aligned with the video frames driven by the same samples.
    """

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._resampler = _mono_resampler("s16", PLAYBACK_RATE, frame_size=PLAYBACK_CHUNK_SAMPLES)

    def push(self, samples_16k: np.ndarray) -> list[np.ndarray]:
        """Complete 20 ms chunks now available, each int16 of shape (960,)."""
        samples = np.asarray(samples_16k, dtype=np.float32)
        if samples.ndim != 1:
            raise ValueError(f"speech samples must be a 1-D mono array, got shape {samples.shape}")
        if samples.size == 0:
            return []
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples).reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate = SPEECH_RATE
        return _samples(self._resampler.resample(frame))

    def flush(self) -> list[np.ndarray]:
        """End of the utterance: the rest, the last chunk zero-padded to 960 samples."""
        chunks = _samples(self._resampler.resample(None))
        if chunks and chunks[-1].size < PLAYBACK_CHUNK_SAMPLES:
            last = np.zeros(PLAYBACK_CHUNK_SAMPLES, np.int16)
            last[: chunks[-1].size] = chunks[-1]
            chunks[-1] = last
        self._reset()
        return chunks


def to_playback_frames(samples_16k: np.ndarray) -> list[np.ndarray]:
    """A whole utterance at 16 kHz as 48 kHz s16 20 ms chunks, the last zero-padded."""
    chunker = PlaybackChunker()
    return chunker.push(samples_16k) + chunker.flush()
