"""Speech decoding, live PCM resampling and 48 kHz playback chunking (media_server/speech/audio.py)."""

from __future__ import annotations

import io
import math

import av
import numpy as np
import pytest

from lipstream.timebase import PLAYBACK_CHUNK_SAMPLES
from media_server.speech.audio import (
    PLAYBACK_RESAMPLER_DELAY,
    AudioDecodeError,
    AudioTooLongError,
    PcmFormat,
    PcmResampler,
    PlaybackChunker,
    decode_audio,
    to_playback_frames,
)

TONE_HZ = 440.0
AMPLITUDE = 0.5


def tone(rate: int, seconds: float) -> np.ndarray:
    return (AMPLITUDE * np.sin(2 * np.pi * TONE_HZ * np.arange(int(rate * seconds)) / rate)).astype(np.float32)


def encode(container: str, codec: str, rate: int, seconds: float = 1.0, layout: str = "mono") -> bytes:
    """A tone file made with PyAV, the way a client's upload would arrive."""
    samples = tone(rate, seconds)
    channels = av.AudioLayout(layout).nb_channels
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=container) as output:
        stream = output.add_stream(codec, rate=rate, layout=layout)
        step = stream.codec_context.frame_size or 1024
        for start in range(0, samples.size, step):
            planes = np.tile(samples[start : start + step], (channels, 1))
            frame = av.AudioFrame.from_ndarray(planes, format="fltp", layout=layout)
            frame.sample_rate = rate
            frame.pts = start
            output.mux(stream.encode(frame))
        output.mux(stream.encode(None))
    return buffer.getvalue()


def peak_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    return float(np.argmax(spectrum)) * rate / samples.size


@pytest.mark.parametrize(
    ("container", "codec", "rate"),
    [
        ("wav", "pcm_s16le", 22050),
        ("flac", "flac", 44100),
        ("ogg", "libopus", 48000),
        ("mp3", "libmp3lame", 44100),
        ("mp4", "aac", 24000),
    ],
)
def test_decode_formats_to_16k_mono(container: str, codec: str, rate: int) -> None:
    samples = decode_audio(encode(container, codec, rate))
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert abs(samples.size - 16000) <= 0.05 * 16000  # encoder priming / last-frame padding
    assert abs(peak_hz(samples, 16000) - TONE_HZ) <= 2.0
    assert 0.4 <= np.abs(samples).max() <= 0.6
    assert np.abs(samples).max() <= 1.0


def test_decode_lossless_is_exact_length_and_level() -> None:
    samples = decode_audio(encode("wav", "pcm_s16le", 48000, seconds=2.0))
    assert samples.size == 32000
    expected = tone(16000, 2.0)
    assert np.abs(samples[100:-100] - expected[100:-100]).max() < 2e-3


def test_decode_other_target_rate() -> None:
    samples = decode_audio(encode("flac", "flac", 44100), sample_rate=24000)
    assert samples.size == 24000
    assert abs(peak_hz(samples, 24000) - TONE_HZ) <= 2.0


def test_stereo_is_averaged_not_summed() -> None:
    samples = decode_audio(encode("wav", "pcm_s16le", 48000, layout="stereo"))
    assert abs(np.abs(samples).max() - AMPLITUDE) < 0.01


@pytest.mark.parametrize("data", [b"", b"\x00" * 64, np.random.default_rng(3).bytes(4096), b"RIFF" + b"\x00" * 60])
def test_garbage_is_a_decode_error(data: bytes) -> None:
    with pytest.raises(AudioDecodeError, match="^cannot decode audio: "):
        decode_audio(data)


def test_corrupt_packets_are_skipped_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    data = bytearray(encode("mp4", "aac", 24000, seconds=2.0))
    middle = len(data) // 2
    data[middle : middle + 300] = np.random.default_rng(0).bytes(300)
    samples = decode_audio(bytes(data))
    assert 1.5 * 16000 < samples.size <= 2.05 * 16000
    assert abs(peak_hz(samples, 16000) - TONE_HZ) <= 2.0
    assert "undecodable audio packets" in caplog.text


def test_video_only_file_has_no_audio_stream() -> None:
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="matroska") as output:
        stream = output.add_stream("ffv1", rate=25)
        stream.width = stream.height = 16
        stream.pix_fmt = "yuv420p"
        frame = av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="rgb24")
        output.mux(stream.encode(frame))
        output.mux(stream.encode(None))
    with pytest.raises(AudioDecodeError, match="no audio stream"):
        decode_audio(buffer.getvalue())


def test_too_long_is_rejected() -> None:
    data = encode("wav", "pcm_s16le", 16000, seconds=3.0)
    with pytest.raises(AudioTooLongError, match="2 s limit"):
        decode_audio(data, max_seconds=2.0)
    assert decode_audio(data, max_seconds=3.0).size == 48000


def test_bad_decode_arguments() -> None:
    data = encode("wav", "pcm_s16le", 16000)
    with pytest.raises(ValueError, match="sample_rate"):
        decode_audio(data, sample_rate=0)
    with pytest.raises(ValueError, match="max_seconds"):
        decode_audio(data, max_seconds=-1)


def split_randomly(data: bytes, rng: np.random.Generator) -> list[bytes]:
    cuts = np.sort(rng.choice(np.arange(1, len(data)), size=40, replace=False))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)])]


@pytest.mark.parametrize(
    ("sample_format", "channels", "source_rate"),
    [("s16le", 1, 24000), ("f32le", 1, 24000), ("s16le", 2, 44100), ("f32le", 2, 48000), ("s16le", 6, 8000)],
)
def test_pcm_chunked_equals_one_shot(sample_format: str, channels: int, source_rate: int) -> None:
    samples = np.repeat(tone(source_rate, 1.0)[:, None], channels, axis=1)
    data = (samples * 32767).astype("<i2").tobytes() if sample_format == "s16le" else samples.astype("<f4").tobytes()

    pcm = PcmFormat(source_rate, sample_format, channels)
    one_shot = PcmResampler(pcm, 16000)
    whole = np.concatenate([one_shot.push(data), one_shot.flush()])
    chunked = PcmResampler(pcm, 16000)
    parts = [chunked.push(chunk) for chunk in split_randomly(data, np.random.default_rng(channels))]
    pieces = np.concatenate([*parts, chunked.flush()])

    assert whole.dtype == np.float32
    assert whole.size == 16000
    assert pieces.size == whole.size
    assert np.abs(pieces - whole).max() < 1e-6
    assert abs(peak_hz(whole, 16000) - TONE_HZ) <= 2.0
    assert abs(np.abs(whole).max() - AMPLITUDE) < 0.01


def test_pcm_partial_sample_is_carried() -> None:
    resampler = PcmResampler(PcmFormat(16000, "s16le"), 16000)
    assert resampler.push(b"\x00").size == 0
    assert np.array_equal(resampler.push(b"\x40\x00"), np.array([0x4000 / 32768], np.float32))
    assert np.array_equal(resampler.push(b"\xc0\x00"), np.array([-0x4000 / 32768], np.float32))
    assert np.array_equal(resampler.push(b"\x20"), np.array([0x2000 / 32768], np.float32))


def test_pcm_at_target_rate_passes_through() -> None:
    samples = tone(16000, 0.5)
    resampler = PcmResampler(PcmFormat(16000, "f32le"), 16000)
    assert np.array_equal(resampler.push(samples.tobytes()), samples)
    assert resampler.flush().size == 0


def test_pcm_resampler_restarts_after_flush() -> None:
    data = (tone(24000, 0.5) * 32767).astype("<i2").tobytes()
    resampler = PcmResampler(PcmFormat(24000))
    first = np.concatenate([resampler.push(data), resampler.flush()])
    second = np.concatenate([resampler.push(data), resampler.flush()])
    assert np.array_equal(first, second)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sample_rate": 24000, "sample_format": "s24le"}, "format"),
        ({"sample_rate": 24000, "channels": 9}, "channels"),
        ({"sample_rate": 24000, "channels": 0}, "channels"),
        ({"sample_rate": 0}, "sample_rate"),
        ({"sample_rate": 1}, "sample_rate"),  # 4 KB at 1 Hz would be hours of audio to resample
        ({"sample_rate": 1_000_000_000}, "sample_rate"),
        ({"sample_rate": 24000.5}, "sample_rate"),
    ],
)
def test_pcm_formats_outside_the_speech_range_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PcmFormat(**kwargs)


def test_pcm_resampler_rejects_a_bad_target_rate() -> None:
    with pytest.raises(ValueError, match="target_rate"):
        PcmResampler(PcmFormat(24000), -16000)


def test_playback_chunks_are_sample_aligned() -> None:
    """The lips and the audio track are driven by the same samples: N in -> 3N out, no shift."""
    rng = np.random.default_rng(7)
    speech = np.zeros(16000 + 123, np.float32)
    clicks = [5, 4000, 9999, 16100]
    speech[clicks] = 0.9
    chunker = PlaybackChunker()
    chunks: list[np.ndarray] = []
    pushed = 0
    for size in rng.integers(1, 2500, size=100):
        part = speech[pushed : pushed + size]
        if part.size == 0:
            break
        chunks += chunker.push(part)
        pushed += part.size
        # Only the resampler's filter delay (and the unfilled chunk) is ever held back.
        assert len(chunks) == max(0, 3 * pushed - PLAYBACK_RESAMPLER_DELAY) // PLAYBACK_CHUNK_SAMPLES
    chunks += chunker.flush()

    assert all(c.dtype == np.int16 and c.shape == (PLAYBACK_CHUNK_SAMPLES,) for c in chunks)
    assert len(chunks) == math.ceil(3 * speech.size / PLAYBACK_CHUNK_SAMPLES)
    playback = np.concatenate(chunks)
    loud = playback > 16000
    local_max = np.r_[False, (playback[1:-1] >= playback[:-2]) & (playback[1:-1] > playback[2:]), False]
    assert np.flatnonzero(loud & local_max).tolist() == [3 * c for c in clicks]
    assert not playback[3 * speech.size :].any()  # the padding is silence


def test_playback_tone_level_and_restart() -> None:
    speech = tone(16000, 0.3)
    frames = to_playback_frames(speech)
    playback = np.concatenate(frames).astype(np.float32) / 32768
    assert len(frames) == math.ceil(3 * speech.size / PLAYBACK_CHUNK_SAMPLES)
    assert abs(peak_hz(playback[: 3 * speech.size], 48000) - TONE_HZ) <= 4.0
    assert abs(np.abs(playback).max() - AMPLITUDE) < 0.01
    chunker = PlaybackChunker()
    first = chunker.push(speech) + chunker.flush()
    second = chunker.push(speech) + chunker.flush()
    assert np.array_equal(np.concatenate(first), np.concatenate(second))
    assert np.array_equal(np.concatenate(first), np.concatenate(frames))


def test_playback_rejects_non_mono() -> None:
    with pytest.raises(ValueError, match="1-D mono"):
        PlaybackChunker().push(np.zeros((2, 100), np.float32))


def test_channel_layout_the_resampler_cannot_mix_is_a_decode_error() -> None:
    import wave

    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:  # a valid WAV with 64 channels
        writer.setnchannels(64)
        writer.setsampwidth(2)
        writer.setframerate(16000)
        writer.writeframes(bytes(64 * 2 * 1600))
    with pytest.raises(AudioDecodeError):
        decode_audio(buffer.getvalue())
