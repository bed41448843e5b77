"""The edge's late-frame meter, which admission reads."""

from __future__ import annotations

import time

import pytest

from media_server.load import MIN_FRAMES, LoadMeter


def test_the_share_of_late_frames_over_the_window() -> None:
    meter = LoadMeter(window_s=10.0)
    meter.frames(sent=90, late=0)
    meter.frames(sent=10, late=10)
    assert meter.late_pct() == pytest.approx(10.0)


def test_too_few_frames_say_nothing() -> None:
    meter = LoadMeter(window_s=10.0)
    meter.frames(sent=MIN_FRAMES - 1, late=MIN_FRAMES - 1)
    assert meter.late_pct() == 0.0
    meter.frames(sent=1, late=1)
    assert meter.late_pct() == 100.0


def test_late_frames_leave_with_the_window() -> None:
    meter = LoadMeter(window_s=0.3)
    meter.frames(sent=100, late=50)
    assert meter.late_pct() == 50.0
    time.sleep(0.6)
    meter.frames(sent=100, late=0)
    assert meter.late_pct() == 0.0
