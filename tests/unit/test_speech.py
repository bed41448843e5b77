"""The speech timeline: scheduling, back-to-back utterances, starved live feeds, interrupt."""

from __future__ import annotations

import numpy as np
import pytest

from lipstream.timebase import PLAYBACK_CHUNK_SAMPLES, PLAYBACK_SAMPLES_PER_FRAME
from media_server.speech.timeline import SpeechQueueFull, SpeechTimeline
from media_server.speech.utterance import Utterance


def file_utterance(frames: int, level: int = 1000) -> Utterance:
    vectors = np.zeros((frames, 512), np.float32)
    vectors[:, 0] = np.arange(frames)  # frame i's vector is recognisable
    playback = np.full(frames * PLAYBACK_SAMPLES_PER_FRAME, level, np.int16)
    return Utterance.from_file(vectors, playback, frames * 640)


def index_at(timeline: SpeechTimeline, frame: int) -> int | None:
    planned = timeline.plan(frame)
    return None if planned is None else planned[1]


def test_file_utterances_play_back_to_back_after_the_lead() -> None:
    timeline = SpeechTimeline(lead_frames=3, max_queued=4)
    first, second = file_utterance(5), file_utterance(4, level=2000)
    timeline.add(first)
    timeline.add(second)
    assert first.start == 3 and second.start == 8
    shown = []
    for frame in range(16):
        timeline.advance_to(frame)
        planned = timeline.plan(frame)
        shown.append(None if planned is None else (planned[0].id, planned[1]))
    assert shown[:3] == [None] * 3
    assert shown[3:8] == [(first.id, i) for i in range(5)]
    centre = np.frombuffer(first.window(3), np.float16).reshape(16, 512)[8]
    assert centre[0] == 3, "frame 3's window is centred on frame 3's vector"
    assert shown[8:12] == [(second.id, i) for i in range(4)]
    assert shown[12:] == [None] * 4
    kinds = [(e.kind, e.frame) for e in timeline.events]
    assert kinds == [("speech_start", 3), ("speech_end", 8), ("speech_start", 8), ("speech_end", 12)]


def test_audio_chunks_follow_the_same_frames() -> None:
    timeline = SpeechTimeline(lead_frames=1, max_queued=2)
    timeline.add(file_utterance(3, level=1234))  # frames 1, 2, 3
    heard = [int(timeline.audio_chunk(chunk)[0]) for chunk in range(12)]
    assert heard == [0] * 2 + [1234] * 6 + [0] * 4
    assert all(timeline.audio_chunk(c).size == PLAYBACK_CHUNK_SAMPLES for c in range(12))


def test_starved_live_feed_holds_audio_and_video_together() -> None:
    timeline = SpeechTimeline(lead_frames=0, max_queued=2)
    live = Utterance("live")
    timeline.add(live)
    assert live.start == 1
    window = np.zeros((32, 16, 16), np.float32)
    live.add_live([window, window], np.full(2 * PLAYBACK_SAMPLES_PER_FRAME, 7, np.int16), 1280)
    shown = []
    for frame in range(1, 6):
        timeline.advance_to(frame)
        shown.append(index_at(timeline, frame))
        heard = timeline.audio_chunk(frame * 2)
        assert (heard[0] == 7) == (shown[-1] is not None)
    # Frames 1-2 play what arrived; 3-5 wait (idle and silent) instead of running ahead.
    assert shown == [0, 1, None, None, None]
    assert timeline.stalled_frames == 3
    live.add_live([window], np.full(PLAYBACK_SAMPLES_PER_FRAME, 7, np.int16), 640)
    timeline.advance_to(6)
    assert index_at(timeline, 6) == 2, "the utterance resumes where it stopped"
    live.finish([], np.zeros(0, np.int16))
    timeline.finished_live()
    timeline.advance_to(7)
    assert timeline.plan(7) is None and not timeline.speaking


def test_utterance_after_a_live_one_waits_for_its_end() -> None:
    timeline = SpeechTimeline(lead_frames=0, max_queued=3)
    live = Utterance("live")
    timeline.add(live)
    queued = file_utterance(2)
    timeline.add(queued)
    assert queued.start is None
    live.add_live([np.zeros((32, 16, 16), np.float32)] * 3, np.zeros(3 * PLAYBACK_SAMPLES_PER_FRAME, np.int16), 1920)
    live.finish([], np.zeros(0, np.int16))
    timeline.finished_live()
    assert queued.start == live.start + 3


def test_interrupt_drops_everything_and_limits_hold() -> None:
    timeline = SpeechTimeline(lead_frames=0, max_queued=2)
    timeline.add(file_utterance(10))
    timeline.add(file_utterance(10))
    with pytest.raises(SpeechQueueFull):
        timeline.add(file_utterance(1))
    timeline.advance_to(3)
    assert timeline.speaking and timeline.queued_seconds() == pytest.approx(0.8)
    assert len(timeline.interrupt()) == 2
    assert timeline.plan(3) is None and not timeline.speaking
    assert [e.kind for e in timeline.events][-2:] == ["interrupted", "interrupted"]


def test_speech_start_tells_time_queued_behind_earlier_speech_apart_from_the_lead() -> None:
    """A second utterance queued while the first plays was due when the first ended: its lead is
    counted from there, and the wait before is queued time, not latency."""
    timeline = SpeechTimeline(lead_frames=3, max_queued=4)
    first = file_utterance(50)
    timeline.add(first)  # at frame 0: starts at 3
    timeline.advance_to(10)
    second = file_utterance(5)
    timeline.add(second)  # queued at frame 10, behind the first until frame 53
    timeline.advance_to(60)
    starts = {e.utterance: e for e in timeline.events if e.kind == "speech_start"}
    assert (starts[first.id].queued_frames, starts[first.id].lead_frames) == (0, 3)
    assert (starts[second.id].queued_frames, starts[second.id].lead_frames) == (43, 0)
    ends = [e for e in timeline.events if e.kind == "speech_end"]
    assert [(e.utterance, e.played_frames, e.interrupted) for e in ends] == [
        (first.id, 50, False),
        (second.id, 5, False),
    ]


def test_an_interrupt_ends_what_plays_with_the_position_reached() -> None:
    timeline = SpeechTimeline(lead_frames=2, max_queued=4)
    playing, waiting = file_utterance(40), file_utterance(10)
    timeline.add(playing)
    timeline.add(waiting)
    timeline.advance_to(12)  # playing started at 2: 10 frames shown
    timeline.interrupt()
    events = [(e.kind, e.utterance, e.played_frames, e.interrupted) for e in timeline.events if e.frame == 12]
    assert events == [
        ("speech_end", playing.id, 10, True),
        ("interrupted", playing.id, 10, True),
        ("interrupted", waiting.id, 0, True),
    ]
    again = file_utterance(5)
    timeline.add(again)
    timeline.advance_to(20)
    start = next(e for e in timeline.events if e.kind == "speech_start" and e.utterance == again.id)
    assert (start.queued_frames, start.lead_frames) == (0, 2)
