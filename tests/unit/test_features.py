"""SyncTalk_2D audio features (media_server/speech: mel, encoders, features, incremental).

Checked against librosa and the contract.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import librosa
import numpy as np
import onnx
import pytest
import scipy.signal
from onnx import TensorProto, helper, numpy_helper

from benchmarks.kit.speech import voiced_bursts
from lipstream.contract import ENERGY_COMPONENT, FULL_WINDOW_LOOKAHEAD_FRAMES
from media_server.speech.encoders import EncoderError
from media_server.speech.features import FeatureExtractor, model_windows
from media_server.speech.incremental import IncrementalFeatures
from media_server.speech.mel import SILENCE, mel_filter_bank, mel_spectrogram, mel_start, mel_windows

RATE = 16000


def librosa_mel(samples: np.ndarray) -> np.ndarray:
    emphasised = scipy.signal.lfilter([1, -0.97], [1], samples).astype(np.float32)
    magnitude = np.abs(librosa.stft(emphasised, n_fft=800, hop_length=200, win_length=800, window="hann", center=True))
    mel = librosa.filters.mel(sr=RATE, n_fft=800, n_mels=80, fmin=55, fmax=7600) @ magnitude
    db = 20 * np.log10(np.maximum(1e-5, mel)) - 20
    return np.clip(8 * (db + 100) / 100 - 4, -4, 4)


def test_filter_bank_matches_librosa() -> None:
    reference = librosa.filters.mel(sr=RATE, n_fft=800, n_mels=80, fmin=55, fmax=7600)
    assert mel_filter_bank().shape == (80, 401)
    assert np.abs(mel_filter_bank() - reference).max() < 1e-7


@pytest.mark.filterwarnings("ignore:n_fft=800 is too large")  # librosa, on the shortest inputs
@pytest.mark.parametrize("n_samples", [RATE * 2 + 137, 800, 199, 1])
def test_mel_matches_librosa(n_samples: int) -> None:
    samples = voiced_bursts(3.0)[RATE // 8 : RATE // 8 + n_samples]  # from inside the first burst
    mel = mel_spectrogram(samples)
    assert mel.dtype == np.float32
    assert mel.shape == (80, 1 + n_samples // 200)
    assert np.abs(mel - librosa_mel(samples)).max() < 1e-4


def test_silence_is_the_floor() -> None:
    assert np.all(mel_spectrogram(np.zeros(4000, np.float32)) == SILENCE)


def test_window_starts_follow_3_2_frames() -> None:
    frames = np.arange(20000)
    assert np.array_equal(mel_start(frames), [int(3.2 * i) for i in frames])
    mel = mel_spectrogram(voiced_bursts(1.0))
    starts = mel_start(np.arange(25))
    windows = mel_windows(mel, starts)
    for i, start in enumerate(starts):
        expected = np.full((80, 16), SILENCE, np.float32)
        available = mel[:, start : start + 16]
        expected[:, : available.shape[1]] = available
        assert np.array_equal(windows[i], expected)


@pytest.mark.parametrize(
    ("n_samples", "frames"), [(0, 0), (1, 1), (639, 1), (640, 1), (641, 2), (RATE, 25), (RATE * 3 + 5, 76)]
)
def test_frame_count(n_samples: int, frames: int) -> None:
    extractor = FeatureExtractor()
    samples = voiced_bursts(4.0)[:n_samples]
    assert extractor.vectors(samples).shape == (frames, 512)
    assert extractor.windows(samples).shape == (frames, 32, 16, 16)


def test_tone_burst_lands_on_its_frames() -> None:
    samples = np.zeros(RATE * 2, np.float32)
    burst = np.arange(6400, 12800)
    samples[burst] = 0.5 * np.sin(2 * np.pi * 440 * burst / RATE)
    energy = FeatureExtractor().vectors(samples)[:, ENERGY_COMPONENT]
    silent = np.r_[0:9, 21 : len(energy)]
    assert np.all(energy[silent] == SILENCE)
    # A pure tone lights up two of the 80 bands, so its mean sits just above the floor.
    assert energy[10:20].min() > SILENCE + 0.1


def test_builtin_projection_contract() -> None:
    samples = voiced_bursts(1.5)
    vectors = FeatureExtractor().vectors(samples)
    mel = mel_spectrogram(samples)
    weights = np.random.default_rng(20240611).standard_normal((510, 1280), np.float32)
    for i in range(len(vectors)):
        start = int(3.2 * i)
        window = np.full((80, 16), -4.0, np.float32)
        window[:, : mel[:, start : start + 16].shape[1]] = mel[:, start : start + 16]
        assert vectors[i, 0] == pytest.approx(window[:, 0:4].mean(), abs=1e-5)
        assert vectors[i, 1] == pytest.approx(window.mean(), abs=1e-5)
        np.testing.assert_allclose(vectors[i, 2:], weights @ window.reshape(-1) / np.sqrt(1280), atol=1e-4)
    assert vectors.dtype == np.float32


def test_model_windows_stack_frames_around_each_frame() -> None:
    vectors = np.random.default_rng(1).standard_normal((20, 512)).astype(np.float32)
    windows = model_windows(vectors)
    assert windows.shape == (20, 32, 16, 16) and windows.dtype == np.float32
    for i in range(20):
        stacked = windows[i].reshape(16, 512)
        for k, frame in enumerate(range(i - 8, i + 8)):
            expected = vectors[frame] if 0 <= frame < 20 else np.zeros(512, np.float32)
            assert np.array_equal(stacked[k], expected)
    assert model_windows(vectors[:0]).shape == (0, 32, 16, 16)


def write_linear_encoder(path: Path, weights: np.ndarray, batch: int | str = "batch") -> Path:
    """[B,1,80,16] -> flatten -> @ weights: an ONNX encoder whose output the test can predict."""
    graph = helper.make_graph(
        [
            helper.make_node("Flatten", ["mel"], ["flat"], axis=1),
            helper.make_node("MatMul", ["flat", "weights"], ["vector"]),
        ],
        "ave",
        [helper.make_tensor_value_info("mel", TensorProto.FLOAT, [batch, 1, 80, 16])],
        [helper.make_tensor_value_info("vector", TensorProto.FLOAT, [batch, weights.shape[1]])],
        [numpy_helper.from_array(weights, "weights")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


@pytest.mark.parametrize("batch", ["batch", 1, 4])  # dynamic batch, or an export with a fixed one
def test_onnx_encoder_in_batches(tmp_path: Path, batch: int | str) -> None:
    weights = np.random.default_rng(2).standard_normal((1280, 512)).astype(np.float32) / 40
    extractor = FeatureExtractor(write_linear_encoder(tmp_path / "ave.onnx", weights, batch))
    samples = voiced_bursts(6.0)  # 150 frames: several encoder batches, the last one partial
    mel_windows_ = mel_windows(mel_spectrogram(samples), mel_start(np.arange(150)))
    np.testing.assert_allclose(extractor.vectors(samples), mel_windows_.reshape(150, -1) @ weights, atol=1e-4)


def test_encoder_errors(tmp_path: Path) -> None:
    with pytest.raises(EncoderError, match="does not exist"):
        FeatureExtractor(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(EncoderError, match="cannot be loaded"):
        FeatureExtractor(tmp_path / "junk.onnx")
    narrow = write_linear_encoder(tmp_path / "narrow.onnx", np.zeros((1280, 256), np.float32))
    with pytest.raises(EncoderError, match=r"must output \[B,512\]"):
        FeatureExtractor(narrow)


@pytest.mark.parametrize("bad", [np.zeros((2, 640), np.float32), np.array([0.0, np.nan], np.float32)])
def test_bad_samples_are_rejected(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="speech samples"):
        FeatureExtractor().vectors(bad)


def stream(features: IncrementalFeatures, samples: np.ndarray, seed: int) -> list[tuple[int, np.ndarray]]:
    """Push in random chunk sizes (1 sample to 0.2 s), then finish."""
    rng = np.random.default_rng(seed)
    emitted: list[tuple[int, np.ndarray]] = []
    position = 0
    while position < samples.size:
        size = int(rng.choice([1, 7, 200, 640, 1000, 3200]))
        emitted += features.push(samples[position : position + size])
        position += size
    return emitted + features.finish()


@pytest.mark.parametrize("lookahead", [FULL_WINDOW_LOOKAHEAD_FRAMES, 13])
def test_incremental_equals_whole_utterance(lookahead: int) -> None:
    extractor = FeatureExtractor()
    samples = voiced_bursts(3.0)[: RATE * 3 - 77]
    expected = extractor.windows(samples)
    emitted = stream(IncrementalFeatures(extractor, lookahead), samples, seed=lookahead)
    assert [i for i, _ in emitted] == list(range(len(expected)))
    np.testing.assert_allclose(np.stack([w for _, w in emitted]), expected, atol=1e-5)


def test_a_frame_less_than_the_full_window_look_ahead_is_not_exact() -> None:
    """The contract's full-window look-ahead is the smallest that gives every window whole."""
    extractor = FeatureExtractor()
    samples = voiced_bursts(3.0)
    expected = extractor.windows(samples)
    emitted = stream(IncrementalFeatures(extractor, FULL_WINDOW_LOOKAHEAD_FRAMES - 1), samples, seed=1)
    assert not np.allclose(np.stack([w for _, w in emitted]), expected, atol=1e-5)


def test_lookahead_1_reads_the_frames_own_energy() -> None:
    extractor = FeatureExtractor()
    samples = voiced_bursts(3.0, seed=4)
    vectors = extractor.vectors(samples)
    emitted = stream(IncrementalFeatures(extractor, 1), samples, seed=5)
    windows = np.stack([w for _, w in emitted]).reshape(-1, 16, 512)
    assert len(windows) == len(vectors)
    np.testing.assert_allclose(windows[:, 8, ENERGY_COMPONENT], vectors[:, ENERGY_COMPONENT], atol=1e-5)
    live = windows[:-7]  # frames emitted before finish: nothing after frame i+1 is known
    assert not live[:, 10:].any()
    assert live[:, 9].any(axis=1).all()


@pytest.mark.parametrize("lookahead", [0, 1, 4])
def test_output_does_not_depend_on_chunking(lookahead: int) -> None:
    extractor = FeatureExtractor()
    samples = voiced_bursts(2.0, seed=6)
    first = stream(IncrementalFeatures(extractor, lookahead), samples, seed=1)
    second = stream(IncrementalFeatures(extractor, lookahead), samples, seed=2)
    assert [i for i, _ in first] == [i for i, _ in second]
    np.testing.assert_allclose(np.stack([w for _, w in first]), np.stack([w for _, w in second]), atol=1e-5)


@pytest.mark.parametrize("lookahead", [1, 13])
def test_frame_is_emitted_when_its_lookahead_arrives(lookahead: int) -> None:
    features = IncrementalFeatures(FeatureExtractor(), lookahead)
    samples = voiced_bursts(2.0, seed=8)
    step = 80
    for position in range(0, samples.size, step):
        for frame, _ in features.push(samples[position : position + step]):
            needed = 640 * (frame + lookahead + 1) + 400
            assert position < needed <= position + step
            assert features.samples_needed(frame) == needed


def test_finish_starts_a_new_utterance() -> None:
    extractor = FeatureExtractor()
    features = IncrementalFeatures(extractor, 2)
    first = stream(features, voiced_bursts(1.0, seed=9), seed=3)
    again = stream(features, voiced_bursts(1.0, seed=9), seed=4)
    assert [i for i, _ in again] == [i for i, _ in first] == list(range(25))
    np.testing.assert_allclose(np.stack([w for _, w in again]), np.stack([w for _, w in first]), atol=1e-5)


def test_live_stream_memory_stays_bounded() -> None:
    """A long live feed must not keep its whole history."""
    features = IncrementalFeatures(FeatureExtractor(), 1)
    chunk = voiced_bursts(1.0, seed=10)
    for _ in range(5):
        features.push(chunk)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(30):
            features.push(chunk)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 200_000  # keeping 30 s of history would take about 4 MB (samples, mel columns, vectors)


def test_lookahead_must_be_non_negative() -> None:
    with pytest.raises(ValueError, match="lookahead_frames"):
        IncrementalFeatures(FeatureExtractor(), -1)
