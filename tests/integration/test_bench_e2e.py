"""`lipstream bench e2e`: real services in child processes, real WebRTC clients, the documented JSON."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pytest

from benchmarks.e2e.analysis import lag_seconds
from benchmarks.kit.speech import random_syllables
from lipstream.cli import build_parser

TOP_LEVEL = {
    "bench",
    "capacity_sessions",
    "late_frame_pct",
    "speech_to_lips_frames",
    "interrupt_to_idle_frames",
    "av_offset_ms",
    "rss_mb",
    "machine",
    "levels",
    "model_lookahead_frames",
    "targets",
}


def parse(argv: list[str]) -> argparse.Namespace:
    """`lipstream bench ...` as the console script parses it."""
    return build_parser().parse_args(["bench", *argv])


def test_quick_run_reports_capacity_latency_sync_and_memory(tmp_path: Path) -> None:
    out = tmp_path / "e2e.json"
    args = parse(["e2e", "--quick", "--json", str(out)])
    assert args.handler(args) == 0
    result = json.loads(out.read_text())

    assert TOP_LEVEL <= set(result) and result["bench"] == "e2e" and result["mode"] == "quick"
    assert result["machine"]["cpu_count"] >= 1
    assert result["model_lookahead_frames"] == 1  # parametric-mouth, as the inference service declares it
    assert [level["sessions"] for level in result["levels"]][:1] == [1]
    # Capacity is the largest level that held (a timing figure: how many hold is the bench's to report).
    held = [level["sessions"] for level in result["levels"] if level["holds"]]
    assert result["capacity_sessions"] == (held[-1] if held else 0)
    assert 0 <= result["late_frame_pct"] <= 100
    assert 0 < result["speech_to_lips_frames"] < 25
    assert 0 < result["interrupt_to_idle_frames"] < 25
    for offset in result["av_offset_ms_by_axis"].values():
        assert math.isfinite(offset) and abs(offset) < 200
    assert result["av_offset_ms"] == result["av_offset_ms_by_axis"]["packet_arrival"]
    assert result["rss_mb"]["base"] > 0 and math.isfinite(result["rss_mb"]["per_session"])
    assert set(result["targets"]) == {
        "capacity_sessions",
        "speech_to_lips_frames",
        "interrupt_to_idle_frames",
        "abs_av_offset_ms",
        "rss_mb_per_session",
    }

    single = result["levels"][0]
    assert single["frames"]["expected"] > 0 and single["cpu_pct"]["edge"] > 0
    session = single["per_session"][0]
    # Frame numbers at the client agree with the server's: its speech_start event names the frame it
    # scheduled, and the lips open there (a frame later if that one came out late).
    assert session["speech_start_event_frame"] == session["scheduled_start_frame"]
    assert 0 <= session["first_moving_frame"] - session["scheduled_start_frame"] <= 2
    assert session["interrupt"]["was_moving"], "the interrupt must land while the mouth is open"


@pytest.mark.parametrize("lag_ms", [-27.0, 0.0, 7.5, 13.0, 61.0])
def test_lag_is_found_with_sub_frame_resolution(lag_ms: float) -> None:
    """An audio RMS envelope every 20 ms, and a mouth every 40 ms that opens (non-linearly) `lag_ms` later."""
    rng = np.random.default_rng(1)
    t = np.arange(0.0, 12.0, 0.001)
    voiced = np.zeros(t.size)
    for start, end in random_syllables(12.0, seed=3):
        voiced[int(start * 1000) : int(end * 1000)] = 1.0
    fade = np.hanning(31)
    voiced = np.convolve(voiced, fade / fade.sum(), mode="same")
    audio_t = np.arange(0.0, 12.0, 0.02) + 0.01
    audio = np.interp(audio_t, t, voiced) + rng.normal(0.0, 0.02, audio_t.size)
    video_t = np.arange(0.0, 12.0, 0.04) + 0.02
    mouth = 3.0 + 20.0 * np.sqrt(np.interp(video_t - lag_ms / 1000, t, voiced)) + rng.normal(0.0, 0.5, video_t.size)
    assert lag_seconds(video_t, mouth, audio_t, audio) * 1000 == pytest.approx(lag_ms, abs=2.0)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--max-sessions", "0"], "argument --max-sessions: must be at least 1, got 0"),
        (["--max-sessions", "two"], "argument --max-sessions: must be a whole number, got 'two'"),
        (["--seconds", "1"], "argument --seconds: must be between 2 and 100, got 1"),
        (["--seconds", "soon"], "argument --seconds: must be a number, got 'soon'"),
    ],
)
def test_bad_arguments_exit_2_naming_the_flag(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse(["e2e", "--json", "out.json", *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
