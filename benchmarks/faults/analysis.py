"""Per fault and viewer: the longest wait between frames, frames never received, and when lips moved again.

Times are the arrival of each frame's last RTP packet at the viewer (as the e2e bench measures),
with aiortc's decoded output beside it. A fault's window runs from its injection to the end of
its observation, and takes in the last frame before the injection so that a gap spanning it
counts. `control` measures the same over `control_s` before any fault: what this machine shows anyway.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmarks.e2e.analysis import VideoSeries, first_moving
from benchmarks.faults.health import HealthAnswer, SessionAnswer
from benchmarks.faults.run import Fault, Measured
from lipstream.timebase import PTS_PER_FRAME

OUTAGE_SETTLE_S = 0.5  # frames in flight at the injection may still show the mouth
PLOT_LEAD_S = 2.0  # the plotted series start this long before the injection


def _window(series: VideoSeries, start: float, stop: float) -> np.ndarray:
    """Indices of the frames that arrived in [start, stop], and the one before."""
    inside = np.flatnonzero((series.packet >= start) & (series.packet <= stop))
    if inside.size and inside[0] > 0:
        inside = np.concatenate(([inside[0] - 1], inside))
    return inside


def continuity(series: VideoSeries, start: float, stop: float) -> dict[str, Any]:
    """The longest gaps between consecutive frames (ms), and frames missing from the pts sequence."""
    index = _window(series, start, stop)
    if index.size < 2:
        return {"longest_gap_ms": None, "longest_gap_decoded_ms": None, "frames_received": int(index.size)}
    gaps = np.diff(series.packet[index])
    pts = np.unique(series.pts[index])
    expected = int((pts[-1] - pts[0]) // PTS_PER_FRAME) + 1
    return {
        "longest_gap_ms": round(1000 * float(gaps.max()), 1),
        "longest_gap_at_s": round(float(series.packet[index][int(gaps.argmax()) + 1] - start), 3),
        "longest_gap_decoded_ms": round(1000 * float(np.diff(series.decoded[index]).max()), 1),
        "gaps_over_100ms": int(np.count_nonzero(gaps > 0.1)),
        "frames_expected": expected,
        "frames_received": int(pts.size),
        "frames_lost": expected - int(pts.size),
    }


def viewer_fault(series: VideoSeries, fault: Fault, threshold: float) -> dict[str, Any]:
    """One viewer's numbers for one fault."""
    result = continuity(series, fault.injected, fault.end)
    lips = first_moving(series, fault.back, threshold)
    outage = (series.packet >= fault.injected + OUTAGE_SETTLE_S) & (series.packet <= fault.back)
    moving = series.motion[outage] > threshold
    result.update(
        {
            "lips_again_s": round(float(series.packet[lips] - fault.back), 3) if lips is not None else None,
            "lips_again_after_injection_s": round(float(series.packet[lips] - fault.injected), 3)
            if lips is not None
            else None,
            "moving_pct_during_outage": round(100 * float(moving.mean()), 1) if moving.size else None,
        }
    )
    if fault.restarted is not None and lips is not None:
        result["lips_again_after_restart_issued_s"] = round(float(series.packet[lips] - fault.restarted), 3)
    return result


def stream_view(sessions: list[SessionAnswer], viewer: int, fault: Fault) -> dict[str, Any]:
    """The edge's side for one session: when its inference stream was open again for good, and its late frames."""
    polls = [s for s in sessions if s.viewer == viewer and fault.injected <= s.at <= fault.end]
    reopened: float | None = None
    for poll in polls:
        if poll.at >= fault.back and poll.inference_connected:
            reopened = poll.at if reopened is None else reopened
        elif poll.at >= fault.back:
            reopened = None
    late = [p.late_frames for p in polls if p.inference_connected is not None]
    return {
        "edge_stream_open_after_back_s": round(reopened - fault.back, 3) if reopened is not None else None,
        "edge_late_frames": late[-1] - late[0] if late else None,
    }


def plot_series(series: VideoSeries, fault: Fault, threshold: float) -> dict[str, list[float]]:
    """For the PNG: per frame around the fault, its arrival (s from the injection), the gap before it, its motion."""
    index = _window(series, fault.injected - PLOT_LEAD_S, fault.end)
    arrival = series.packet[index]
    gaps = np.diff(arrival, prepend=arrival[:1])
    return {
        "t_s": [round(float(t - fault.injected), 3) for t in arrival],
        "gap_ms": [round(1000 * float(g), 1) for g in gaps],
        "motion": [round(float(m), 2) for m in series.motion[index]],
        "threshold": [round(threshold, 2)],
    }


def health_view(answers: list[HealthAnswer], fault: Fault) -> dict[str, Any]:
    """When /health went 503 after the injection, when it was 200 again after the inference was back,
    and the stretches (s from the injection) it was not 200 (status 0: no answer within 2 s)."""
    went = next((a.at for a in answers if fault.injected <= a.at <= fault.end and a.status == 503), None)
    again = next((a.at for a in answers if a.at >= max(fault.back, went or 0.0) and a.status == 200), None)
    spans: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for answer in answers:
        t = round(answer.at - fault.injected, 3)
        if not -PLOT_LEAD_S <= t <= fault.end - fault.injected or answer.status == 200:
            current = None
        elif current is not None and current["status"] == answer.status:
            current["to"] = t
        else:
            current = {"from": t, "to": t, "status": answer.status}
            spans.append(current)
    return {
        "went_503_after_injection_s": round(went - fault.injected, 3) if went is not None else None,
        "back_to_200_after_inference_back_s": round(again - fault.back, 3) if again is not None else None,
        "not_200_spans_s": spans,
    }


def analyse(measured: Measured) -> dict[str, Any]:
    """Every fault's numbers per viewer, the control window's, and the series the plot draws."""
    series = [VideoSeries.of(viewer, measured.mouth) for viewer in measured.viewers]
    first = measured.faults[0].injected
    control = [continuity(s, first - measured.options.control_s, first) for s in series]
    faults = []
    for fault in measured.faults:
        viewers = [
            {**viewer_fault(s, fault, t), **stream_view(measured.sessions, number, fault)}
            for number, (s, t) in enumerate(zip(series, measured.thresholds, strict=True))
        ]
        faults.append(
            {
                "fault": fault.name,
                "down_s": measured.options.down_s,
                "inference_back_after_injection_s": round(fault.back - fault.injected, 3),
                "restart_to_serving_s": round(fault.back - fault.restarted, 3) if fault.restarted else None,
                "window_s": round(fault.end - fault.injected, 3),
                "inference_cpu_pct_after_back": fault.inference_cpu_pct,
                "inference_probe_after_window": fault.probe,
                "health": health_view(measured.health, fault),
                "viewers": viewers,
                "series": [plot_series(s, fault, t) for s, t in zip(series, measured.thresholds, strict=True)],
            }
        )
    return {"control": control, "faults": faults}
