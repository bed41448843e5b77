"""One session's numbers from what its client received: speech-to-lips, interrupt-to-idle, A/V offset, losses.

Time axes. Both tracks are paced in real time by the server. Latencies and the
A/V offset use the arrival of a frame's last RTP packet at the client: aiortc's
receiver adds its own buffering after that (it releases a video frame when the
next frame's first packet arrives, and its audio jitter buffer holds 4 packets),
which a browser would not. The offset is also reported on aiortc's decoded output
and on the sender's clock through the RTCP sender reports (what a lip-syncing
player such as a browser aligns on). Each sample sits at the centre of the
interval it stands for: a 40 ms video frame, a 20 ms audio packet.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmarks.e2e import BenchError
from benchmarks.e2e.clients import SessionRun
from benchmarks.e2e.script import SpeechScript
from benchmarks.kit.mouth import MouthMeter
from benchmarks.kit.viewer import Viewer
from lipstream.timebase import FRAME_SECONDS, PLAYBACK_CHUNK_SECONDS, PLAYBACK_RATE, VIDEO_CLOCK_HZ, VIDEO_FPS

LATE_AT_CLIENT_S = FRAME_SECONDS  # a frame this much later than its slot in the paced schedule counts as late
MOVING_MIN = 6.0  # mouth motion (grey levels) above which a frame shows an open mouth ...
MOVING_OVER_IDLE = 2.0  # ... and at least this many times the idle frames' 95th percentile
MAX_LAG_S = 0.2  # A/V offsets searched within +-200 ms
LAG_STEP_S = 0.005


@dataclass(frozen=True)
class VideoSeries:
    """One client's received frames as arrays: session frame number, decoded and packet arrival, motion, pts."""

    frame: np.ndarray
    decoded: np.ndarray
    packet: np.ndarray
    motion: np.ndarray
    pts: np.ndarray

    @classmethod
    def of(cls, client: Viewer, meter: MouthMeter) -> VideoSeries:
        rows = [
            (
                client.frame_of(f.pts),
                f.decoded,
                client.video_rtp.arrival(f.pts, f.decoded),
                meter(client.frame_of(f.pts), f.image),
                f.pts,
            )
            for f in client.video_frames
        ]
        frame, decoded, packet, motion, pts = (np.array(column) for column in zip(*rows, strict=True))
        return cls(frame.astype(np.int64), decoded, packet, motion, pts)

    def between(self, first: int, stop: int) -> np.ndarray:
        return (self.frame >= first) & (self.frame < stop)


def moving_threshold(series: VideoSeries, start: int) -> float:
    """Open mouth: well above the codec noise of the idle frames just before the speech."""
    idle = series.motion[series.between(start - 2 * VIDEO_FPS, start - 2)]
    noise = float(np.percentile(idle, 95)) if idle.size else 0.0
    return max(MOVING_MIN, MOVING_OVER_IDLE * noise)


def losses(series: VideoSeries, first: int, stop: int) -> dict[str, int]:
    """Frames of [first, stop) that never arrived, or arrived more than a frame after their slot.

    The slot of frame n is its paced send time n/25 s plus the session's median transit delay,
    so a player buffering one frame would have shown every frame that is not late.
    """
    inside = series.between(first, stop)
    frames = np.unique(series.frame[inside])
    transit = series.packet[inside] - series.frame[inside] * FRAME_SECONDS
    late = int(np.count_nonzero(transit - np.median(transit) > LATE_AT_CLIENT_S)) if transit.size else 0
    return {"expected": stop - first, "missing": stop - first - frames.size, "late_at_client": late}


def first_moving(series: VideoSeries, after: float, threshold: float) -> int | None:
    """Index of the first frame that arrived after `after` and shows an open mouth."""
    candidates = np.flatnonzero((series.packet > after) & (series.motion > threshold))
    return int(candidates[0]) if candidates.size else None


def interrupt_to_idle(series: VideoSeries, interrupted: float, threshold: float) -> dict[str, Any]:
    """Frames (at 25 fps) from the interrupt request to the arrival of the first frame after the last open mouth.

    None when the mouth was not open as the interrupt went out (a late frame shown idle): nothing to measure.
    """
    after = np.flatnonzero(series.packet > interrupted)
    moving = after[series.motion[after] > threshold]
    idle = after[0] if moving.size == 0 else moving[-1] + 1
    was_moving = bool(after.size and after[0] > 0 and series.motion[after[0] - 1] > threshold)
    measured = was_moving and idle < series.packet.size
    frames = round((series.packet[idle] - interrupted) * VIDEO_FPS, 2) if measured else None
    return {"frames": frames, "moving_frames_after": int(moving.size), "was_moving": was_moving}


def lag_seconds(video_t: np.ndarray, video: np.ndarray, audio_t: np.ndarray, audio: np.ndarray) -> float:
    """Delay of `video` behind `audio` (positive: video late), at the peak of their correlation.

    Both are interpolated onto the video's times shifted by each candidate lag (5 ms steps within
    +-200 ms); the peak is refined by a parabola through its neighbours.
    """
    order = np.argsort(audio_t)
    audio_t, audio = audio_t[order], audio[order]
    keep = (video_t > audio_t[0] + MAX_LAG_S) & (video_t < audio_t[-1] - MAX_LAG_S)
    grid, values = video_t[keep], video[keep]
    lags = np.arange(-MAX_LAG_S, MAX_LAG_S + LAG_STEP_S / 2, LAG_STEP_S)
    shifted = np.interp(grid[None, :] - lags[:, None], audio_t, audio)
    shifted = (shifted - shifted.mean(axis=1, keepdims=True)) / (shifted.std(axis=1, keepdims=True) + 1e-12)
    scores = shifted @ ((values - values.mean()) / (values.std() + 1e-12)) / max(1, values.size)
    peak = int(np.argmax(scores))
    if 0 < peak < lags.size - 1:
        below, at, above = scores[peak - 1 : peak + 2]
        curvature = below - 2 * at + above
        if curvature < 0:
            return float(lags[peak] + LAG_STEP_S * 0.5 * (below - above) / curvature)
    return float(lags[peak])


def av_offsets_ms(run: SessionRun, series: VideoSeries, burst_frames: int) -> dict[str, float]:
    """A/V offset over the syllables on each time axis (see the module docstring)."""
    client = run.client
    inside = series.between(run.start, run.start + burst_frames)
    audio_rows = np.array(
        [(a.decoded, client.audio_rtp.arrival(a.pts, a.decoded), a.pts, a.rms) for a in client.audio_frames]
    )
    a_decoded, a_packet, a_pts, rms = audio_rows.T
    audio_centre, video_centre = 0.5 * PLAYBACK_CHUNK_SECONDS, 0.5 * FRAME_SECONDS
    motion = series.motion[inside]
    axes = {
        "packet_arrival": (series.packet[inside], a_packet),
        "decoded_arrival": (series.decoded[inside], a_decoded),
        "rtp_sender_reports": (
            client.video_rtp.sender_origin() + series.pts[inside] / VIDEO_CLOCK_HZ,
            client.audio_rtp.sender_origin() + a_pts / PLAYBACK_RATE,
        ),
    }
    return {
        name: round(1000 * lag_seconds(video_t + video_centre, motion, audio_t + audio_centre, rms), 2)
        for name, (video_t, audio_t) in axes.items()
    }


def analyse(run: SessionRun, utterance: SpeechScript, meter: MouthMeter) -> dict[str, Any]:
    """One session's entry in the JSON's `per_session` list."""
    series = VideoSeries.of(run.client, meter)
    threshold = moving_threshold(series, run.start)
    lips = first_moving(series, run.accepted, threshold)
    if lips is None:
        raise BenchError(f"session {run.client.session_id[:8]}: the mouth never moved after the speech request")
    starts = [e["frame"] for e in run.client.events if e["type"] == "speech_start" and e["frame"] >= run.start]
    counted = losses(series, run.start, run.start + utterance.interrupt_index)
    return {
        "session": run.client.session_id[:8],
        "moving_threshold": round(threshold, 2),
        "speech_to_lips_frames": round((series.packet[lips] - run.accepted) * VIDEO_FPS, 2),
        "speech_to_lips_from_request_frames": round((series.packet[lips] - run.sent) * VIDEO_FPS, 2),
        "speech_to_lips_decoded_frames": round((series.decoded[lips] - run.accepted) * VIDEO_FPS, 2),
        "speech_start_event_frame": starts[0] if starts else None,
        "first_moving_frame": int(series.frame[lips]),
        "scheduled_start_frame": run.start,
        "interrupt": interrupt_to_idle(series, run.interrupted, threshold),
        "av_offset_ms": av_offsets_ms(run, series, utterance.burst_frames),
        "server_late_frames": run.late_frames,
        "server_speaking_frames": run.speaking_frames,
        "server_stages_ms": run.stages_ms,
        **counted,
    }


def median(values: Sequence[float | None]) -> float | None:
    """Median of the values present, rounded for the JSON; None when none is."""
    present = [v for v in values if v is not None]
    return round(float(statistics.median(present)), 2) if present else None
