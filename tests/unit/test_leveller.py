"""Lips at every speaking level: the levelled features open the bundled model's mouth for quiet, loud
and phone-band speech alike, keep it shut in silence and noise, and a live feed gets the same."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import lips
from benchmarks.kit.speech import voiced_bursts
from benchmarks.kit.voices import at_level, espeak, noise
from lipstream.contract import FULL_WINDOW_LOOKAHEAD_FRAMES
from media_server.config import LevellingConfig
from media_server.speech.features import FeatureExtractor
from media_server.speech.incremental import IncrementalFeatures


@pytest.fixture(scope="module")
def sweep() -> dict:
    """The lips bench's sweep: espeak-ng male and female and a buzzy voice, full and phone band, -35..-10 dBFS."""
    return lips.run()


@pytest.mark.parametrize("path", ["levelled", "live"])
def test_speech_opens_the_mouth_at_every_level_and_band(sweep: dict, path: str) -> None:
    rows = sweep["speech_p90_opening"]
    assert {row["voice"] for row in rows} == {"male", "female", "buzzy"}
    assert {row["dbfs"] for row in rows} == set(lips.LEVELS_DBFS) and {row["band"] for row in rows} == {"full", "phone"}
    short = [row for row in rows if row[path] < lips.TARGET_OPENING]
    assert not short, f"90th percentile opening under {lips.TARGET_OPENING}: {short}"


@pytest.mark.parametrize("path", ["levelled", "live"])
def test_silence_and_noise_below_minus_50_dbfs_keep_it_shut(sweep: dict, path: str) -> None:
    assert {row["signal"] for row in sweep["quiet_max_opening"]} == {"silence", "noise -50 dBFS", "noise -60 dBFS"}
    assert max(row[path] for row in sweep["quiet_max_opening"]) < lips.QUIET_OPENING


def test_without_levelling_quiet_and_phone_speech_barely_open_it(sweep: dict) -> None:
    """What the levelling fixes, measured in the same run."""
    raw = {(row["voice"], row["band"], row["dbfs"]): row["raw"] for row in sweep["speech_p90_opening"]}
    assert raw["male", "full", -35] < 0.3 and raw["female", "phone", -20] < 0.3
    assert not lips.verdict(sweep, "raw")["speech_opens"]


def test_the_pauses_of_quiet_speech_over_noise_stay_shut() -> None:
    """Speech at -35 dBFS with noise at -55 dBFS in its pauses: the gain that lifts the speech does not
    lift the noise."""
    speech = at_level(espeak("en-us"), -35)
    pause = noise(1.0, -55, seed=2)
    samples = np.concatenate([speech, pause])
    openings = lips.file_openings(FeatureExtractor(level=LevellingConfig()))(samples)
    tail = openings[-20:]  # the last 0.8 s: noise only, after the speech
    assert tail.max() < lips.QUIET_OPENING, tail


def test_levelled_live_features_equal_the_whole_utterance_and_ignore_chunking() -> None:
    extractor = FeatureExtractor(level=LevellingConfig())
    samples = at_level(voiced_bursts(3.0), -32)
    expected = extractor.windows(samples)
    rng = np.random.default_rng(3)
    features = IncrementalFeatures(extractor, FULL_WINDOW_LOOKAHEAD_FRAMES)
    emitted, position = [], 0
    while position < samples.size:
        size = int(rng.choice([1, 7, 200, 640, 3200]))
        emitted += features.push(samples[position : position + size])
        position += size
    emitted += features.finish()
    np.testing.assert_allclose(np.stack([w for _, w in emitted]), expected, atol=1e-4)
    assert not np.allclose(expected, FeatureExtractor().windows(samples), atol=1e-2), "levelling changed nothing"
