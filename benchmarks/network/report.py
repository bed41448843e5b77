"""The network bench's JSON: per link rate, what the viewer of an adaptive and of a fixed-bitrate session saw."""

from __future__ import annotations

import statistics
from datetime import UTC, datetime
from typing import Any

import numpy as np

from benchmarks.e2e import BenchError
from benchmarks.e2e.analysis import lag_seconds
from benchmarks.e2e.report import machine_info
from benchmarks.kit.mouth import MouthMeter
from benchmarks.kit.viewer import RTP_WRAP, Viewer
from benchmarks.network.browser import PageCounts
from benchmarks.network.netns import QUEUE_PACKETS
from benchmarks.network.run import FIXED_KBPS, Measured, SessionRun, Talk
from lipstream.timebase import (
    FRAME_SECONDS,
    PLAYBACK_CHUNK_SAMPLES,
    PLAYBACK_CHUNK_SECONDS,
    PLAYBACK_RATE,
    VIDEO_CLOCK_HZ,
    VIDEO_FPS,
)

FREEZE_AFTER_S = 5.0  # freezes are counted from this long after the speech starts
FREEZE_MS = 200.0
LONG_FREEZE_MS = 500.0
AUDIO_MARGIN_S = 0.5  # audio packets are counted from this long after the speech starts to as long before its end
MIN_AV_FRAMES = 50

DEFINITIONS = {
    "link": "UDP on the namespace's loopback through an htb class at rate_kbps with a pfifo of "
    f"{QUEUE_PACKETS} packets (both directions cross it: media and RTCP); TCP (HTTP, gRPC) unshaped",
    "adaptive": "the edge as configured by default: the encoder follows the viewer's estimate (REMB) and loss",
    "fixed": f"the same edge with video.min/start/max_bitrate_kbps all {FIXED_KBPS} and no lower idle rungs: "
    "what every session sent before it followed its link",
    "window": "from the speech's 202 to its end (frames / 25 s): each session talks for speech_s",
    "viewer": "aiortc: a peer in the bench's process that decodes every frame with PyAV; chromium: the demo page "
    "in Debian's Chromium (its own jitter buffer, NACK, PLI and REMB), counted by its getStats() twice a second and "
    "requestVideoFrameCallback",
    "decoded_fps": "video frames the viewer decoded in the window / its length (chromium: its framesDecoded, "
    "interpolated at the window's ends)",
    "freezes": f"gaps over {FREEZE_MS:g} ms between consecutive decoded frames (chromium: presented frames) from "
    f"{FREEZE_AFTER_S:g} s into the "
    "window to its end (a stream that stops before the end freezes until the end); longest_gap_ms over the same span",
    "keyframes": "requested: PLI/FIR the edge received from the viewer in the window; sent: keyframes the session "
    "sent (its own encoder's and the idle loop's); decoded: keyframes the viewer decoded",
    "audio": f"RTP packets of the speech from {AUDIO_MARGIN_S:g} s after its start over the window less "
    f"2 x {AUDIO_MARGIN_S:g} s, by RTP timestamp: expected (20 ms each) and lost (never arrived); chromium: the "
    "change of its inbound audio's packetsReceived and packetsLost over that span",
    "av_offset_ms": "delay of the mouth's motion behind the audio's envelope at their correlation peak "
    "(positive: video late), on the sender's clock through the RTCP sender reports (what a player aligns on) "
    "and on packet arrival at the viewer; null when too few frames arrived, and with chromium (not measured)",
    "series": "the edge's view of the link, polled over HTTP twice a second from the viewer's connection on: t_s "
    "from the speech's start (negative: the idle settle before it), the encoder's target bitrate, what the session "
    "sent in the last second, the viewer's estimate (REMB), the frame step (1: every frame sent, 2: every 2nd ...), "
    "the loss and round trip in the viewer's latest receiver report, and the idle loop's rung (kbit/s) while idle",
}


def _freezes(decoded: np.ndarray, start: float, end: float) -> dict[str, Any]:
    times = np.sort(decoded[decoded < end])
    before = times[times < start + FREEZE_AFTER_S]
    points = np.concatenate([before[-1:], times[times >= start + FREEZE_AFTER_S], [end]])
    gaps = np.diff(points) * 1000 if points.size > 1 else np.array([(end - start - FREEZE_AFTER_S) * 1000])
    return {
        "freezes_over_200ms": int(np.count_nonzero(gaps > FREEZE_MS)),
        "freezes_over_500ms": int(np.count_nonzero(gaps > LONG_FREEZE_MS)),
        "longest_gap_ms": round(float(gaps.max()), 1),
    }


def _audio(viewer: Viewer, start: float, end: float) -> dict[str, int]:
    tap = viewer.audio_rtp
    arrivals = sorted((arrival, (ts - tap.origin) % RTP_WRAP) for ts, arrival in tap.packet_arrival.items())
    after = [ticks for arrival, ticks in arrivals if arrival >= start + AUDIO_MARGIN_S]
    span_s = end - start - 2 * AUDIO_MARGIN_S
    if not after:
        expected = round(span_s / PLAYBACK_CHUNK_SECONDS) + 1
        return {"expected": expected, "received": 0, "lost": expected}
    first = after[0]
    last = first + round(span_s * PLAYBACK_RATE)
    received = len({ticks for _, ticks in arrivals if first <= ticks <= last})
    expected = (last - first) // PLAYBACK_CHUNK_SAMPLES + 1
    return {"expected": expected, "received": received, "lost": expected - received}


def _av_offset(viewer: Viewer, mouth: MouthMeter, start: float, end: float) -> dict[str, float | None]:
    frames = [f for f in viewer.video_frames if start <= f.decoded < end]
    if viewer.first_frame is None or len(frames) < MIN_AV_FRAMES or len(viewer.audio_frames) < MIN_AV_FRAMES:
        return {"rtp_sender_reports": None, "packet_arrival": None}
    motion = np.array([mouth(viewer.frame_of(f.pts), f.image) for f in frames])
    pts = np.array([f.pts for f in frames], dtype=np.float64)
    video_arrival = np.array([viewer.video_rtp.arrival(f.pts, f.decoded) for f in frames])
    audio_pts = np.array([a.pts for a in viewer.audio_frames], dtype=np.float64)
    audio_arrival = np.array([viewer.audio_rtp.arrival(a.pts, a.decoded) for a in viewer.audio_frames])
    rms = np.array([a.rms for a in viewer.audio_frames])
    centre_v, centre_a = 0.5 * FRAME_SECONDS, 0.5 * PLAYBACK_CHUNK_SECONDS
    try:
        senders = (
            viewer.video_rtp.sender_origin() + pts / VIDEO_CLOCK_HZ,
            viewer.audio_rtp.sender_origin() + audio_pts / PLAYBACK_RATE,
        )
    except Exception:  # noqa: BLE001 - no sender report arrived: that axis is unknown
        senders = None
    axes = {"rtp_sender_reports": senders, "packet_arrival": (video_arrival, audio_arrival)}
    return {
        name: None
        if times is None
        else round(1000 * lag_seconds(times[0] + centre_v, motion, times[1] + centre_a, rms), 1)
        for name, times in axes.items()
    }


def _seen_by_aiortc(viewer: Viewer, mouth: MouthMeter, start: float, end: float) -> dict[str, Any]:
    decoded = np.array([f.decoded for f in viewer.video_frames])
    in_window = decoded[(decoded >= start) & (decoded < end)] if decoded.size else decoded
    decoded_at = {f.pts: f.decoded for f in viewer.video_frames}
    return {
        "decoded_frames": int(in_window.size),
        **_freezes(decoded, start, end),
        "keyframes_decoded": sum(1 for pts in viewer.keyframe_pts if start <= decoded_at.get(pts, -1.0) < end),
        "audio_packets": _audio(viewer, start, end),
        "av_offset_ms": _av_offset(viewer, mouth, start, end),
    }


def _seen_by_chromium(counts: PageCounts, start: float, end: float) -> dict[str, Any]:
    """Chromium's counters, read at the window's ends between its samples; its presented frames' gaps."""
    rows = [row for row in counts.stats if "frames" in row]
    if not rows:
        raise BenchError("Chromium reported no inbound video")
    times = np.array([row["t"] for row in rows])

    def counted(key: str, since: float, until: float) -> int:
        values = np.array([row.get(key, 0) for row in rows], dtype=np.float64)
        return round(float(np.interp(until, times, values) - np.interp(since, times, values)))

    audio_since, audio_until = start + AUDIO_MARGIN_S, end - AUDIO_MARGIN_S
    received = counted("audio_received", audio_since, audio_until)
    lost = counted("audio_lost", audio_since, audio_until)
    return {
        "decoded_frames": counted("frames", start, end),
        **_freezes(np.array([t for t, _ in counts.presented]), start, end),
        "keyframes_decoded": counted("keyframes", start, end),
        "audio_packets": {"expected": received + lost, "received": received, "lost": lost},
        "av_offset_ms": {"rtp_sender_reports": None, "packet_arrival": None},
    }


def _series(talk: Talk) -> dict[str, list[Any]]:
    samples = [s for s in talk.samples if "target_kbps" in s]
    return {
        "t_s": [round(s["t"] - talk.accepted, 2) for s in samples],
        "target_kbps": [s["target_kbps"] for s in samples],
        "sent_kbps": [s["sent_kbps"] for s in samples],
        "estimate_kbps": [s["estimate_kbps"] for s in samples],
        "frame_step": [s["frame_step"] for s in samples],
        "loss_pct": [s["loss_pct"] for s in samples],
        "rtt_ms": [s.get("rtt_ms") for s in samples],
        "idle_rung_kbps": [s.get("idle_rung_kbps") for s in samples],
    }


def analyse(run: SessionRun, mouth: MouthMeter) -> dict[str, Any]:
    """One session's entry."""
    talk = run.talk
    start, end = talk.accepted, talk.accepted + talk.frames / VIDEO_FPS
    if isinstance(run.seen, Viewer):
        seen = _seen_by_aiortc(run.seen, mouth, start, end)
    else:
        seen = _seen_by_chromium(run.seen, start, end)
    samples = [s for s in talk.samples if "keyframes_sent" in s and s["t"] >= start]
    first, last = (samples[0], samples[-1]) if samples else ({}, {})
    series = _series(talk)
    speaking = [i for i, t in enumerate(series["t_s"]) if t >= 0]
    targets = [series["target_kbps"][i] for i in speaking]
    sent = [series["sent_kbps"][i] for i in speaking]
    return {
        "mode": run.mode,
        "session": run.session_id[:8],
        "window_s": round(end - start, 2),
        "decoded_frames": seen["decoded_frames"],
        "decoded_fps": round(seen["decoded_frames"] / (end - start), 2),
        "freezes_over_200ms": seen["freezes_over_200ms"],
        "freezes_over_500ms": seen["freezes_over_500ms"],
        "longest_gap_ms": seen["longest_gap_ms"],
        "keyframes": {
            "requested": last.get("keyframe_requests", 0) - first.get("keyframe_requests", 0),
            "sent": last.get("keyframes_sent", 0) - first.get("keyframes_sent", 0),
            "decoded": seen["keyframes_decoded"],
        },
        "audio_packets": seen["audio_packets"],
        "av_offset_ms": seen["av_offset_ms"],
        "target_kbps": {
            "median": round(statistics.median(targets)) if targets else None,
            "min": min(targets, default=None),
            "max": max(targets, default=None),
        },
        "sent_kbps_median": round(statistics.median(sent)) if sent else None,
        "nacked_packets": last.get("nacked_packets", 0) - first.get("nacked_packets", 0),
        "retransmitted_packets": last.get("retransmitted_packets", 0) - first.get("retransmitted_packets", 0),
        "frames_passed_over": talk.final_stats.get("passed_over_frames"),
        "queue_drops": talk.queue_drops,
        "series": series,
    }


def _target(measured: Any, op: str, goal: float) -> dict[str, Any]:
    met = measured is not None and (measured >= goal if op == ">=" else measured <= goal)
    return {"measured": measured, "target": f"{op} {goal:g}", "met": met}


def rate_targets(rate: int | None, adaptive: dict[str, Any], fixed: dict[str, Any] | None) -> dict[str, Any]:
    """The issue's targets at the rates that have one, for the adaptive session."""
    if rate == 600:
        return {
            "decoded_fps": _target(adaptive["decoded_fps"], ">=", 24),
            "freezes_over_200ms": _target(adaptive["freezes_over_200ms"], "<=", 0),
        }
    if rate == 300:
        return {
            "audio_packets_lost": _target(adaptive["audio_packets"]["lost"], "<=", 0),
            "decoded_fps": _target(adaptive["decoded_fps"], ">=", 12),
            "longest_gap_ms": _target(adaptive["longest_gap_ms"], "<=", LONG_FREEZE_MS),
        }
    if rate is None and fixed is not None:  # quality unchanged: as many frames as the fixed bitrate, as smooth
        return {
            "decoded_fps_vs_fixed": _target(round(adaptive["decoded_fps"] - fixed["decoded_fps"], 2), ">=", -0.5),
            "freezes_over_200ms": _target(adaptive["freezes_over_200ms"], "<=", fixed["freezes_over_200ms"]),
            "target_kbps_median": _target(adaptive["target_kbps"]["median"], ">=", FIXED_KBPS),
        }
    return {}


def summarise(measured: Measured) -> dict[str, Any]:
    if not measured.runs:
        raise BenchError("no session ran")
    options = measured.options
    rates = []
    for rate in options.rates_kbps:
        entries = {run.mode: analyse(run, measured.mouth) for run in measured.runs if run.rate_kbps == rate}
        adaptive = entries.get("adaptive")
        rates.append(
            {
                "rate_kbps": rate,
                **entries,
                "targets": rate_targets(rate, adaptive, entries.get("fixed")) if adaptive else {},
            }
        )
    machine = machine_info()
    machine["load_average_1m_before_each_session"] = [round(load, 2) for load in measured.load]
    return {
        "bench": "network",
        "mode": "quick" if options.quick else "full",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "options": {
            "rates_kbps": list(options.rates_kbps),
            "speech_s": options.speech_s,
            "settle_s": options.settle_s,
            "modes": list(options.modes),
            "viewer": options.viewer,
        },
        "definitions": DEFINITIONS,
        "machine": machine,
        "rates": rates,
    }
