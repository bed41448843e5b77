"""The overload bench's JSON and PNG: per admitted viewer its frame rate while loaded, the refusals, the recovery."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.e2e.report import machine_info
from benchmarks.overload.run import Admitted, Measured
from benchmarks.soak.plot import pyplot

MIN_FPS_TARGET = 20.0
SETTLE_S = 1.0  # after its speech began, before a viewer's frame rate counts

DEFINITIONS = {
    "fps": "video frames decoded at the viewer per second, from speech_from_s + 1 s to the end of the load",
    "worst_second_fps": "the fewest frames the viewer decoded in any whole second of that window",
    "late_frames": "the edge's own count for the session: frames sent more than a frame late or shown idle "
    "because their mouth came too late",
    "refusals": "503 (or 429) answers to new sessions while loaded, by the edge's reason",
    "recovered_after_s": "from the end of the load (every viewer hung up) to the first new session admitted",
}


def _arrivals(admitted: Admitted, started: float) -> np.ndarray:
    return np.array([frame.decoded - started for frame in admitted.client.video_frames])


def viewer_result(admitted: Admitted, started: float, load_end_s: float) -> dict[str, Any]:
    arrived = _arrivals(admitted, started)
    begin = admitted.speech_from_s + SETTLE_S
    window = arrived[(arrived >= begin) & (arrived <= load_end_s)]
    seconds = load_end_s - begin
    whole = int(seconds)
    per_second = np.histogram(window, bins=whole, range=(begin, begin + whole))[0] if whole else np.array([])
    stats = admitted.state.get("stats", {})
    return {
        "viewer": admitted.viewer,
        "admitted_s": round(admitted.admitted_s, 2),
        "speech_from_s": round(admitted.speech_from_s, 2),
        "watched_s": round(seconds, 2),
        "fps": round(window.size / seconds, 2) if seconds > 0 else None,
        "worst_second_fps": int(per_second.min()) if per_second.size else None,
        "longest_gap_ms": round(1000 * float(np.diff(window).max()), 1) if window.size > 1 else None,
        "speaking_frames": stats.get("speaking_frames"),
        "late_frames": stats.get("late_frames"),
        "skipped_frames": stats.get("skipped_frames"),
    }


def summarise(measured: Measured) -> dict[str, Any]:
    options = measured.options
    viewers = [viewer_result(a, measured.started, measured.load_end_s) for a in measured.admitted]
    loaded = [a for a in measured.attempts if a.viewer >= 0 and a.status != 200]
    fps = [v["fps"] for v in viewers if v["fps"] is not None]
    speaking = sum(v["speaking_frames"] or 0 for v in viewers)
    late = sum(v["late_frames"] or 0 for v in viewers)
    machine = machine_info()
    machine["load_average_1m"] = {"start": round(measured.load_before, 2), "end": machine["load_average_1m"]}
    return {
        "bench": "overload",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine,
        "options": {
            "viewers": options.viewers,
            "max_sessions": options.max_sessions,
            "arrive_every_s": options.arrive_every_s,
            "load_s": options.load_s,
            "quick": options.quick,
        },
        "edge_environment": options.edge_environment(),
        "admitted": len(viewers),
        "refusals": dict(Counter(a.reason.split(":")[0] for a in loaded)),
        "refused_viewers": len({a.viewer for a in loaded} - {v["viewer"] for v in viewers}),
        "cpu_pct_while_loaded": measured.cpu_pct,
        "late_frame_pct": round(100 * late / speaking, 2) if speaking else None,
        "min_fps": min(fps) if fps else None,
        "recovered_after_s": round(measured.recovered_after_s, 2) if measured.recovered_after_s is not None else None,
        "targets": {
            "every_session_fps": {"target": f">= {MIN_FPS_TARGET:g}", "measured": min(fps) if fps else None},
            "met": bool(fps) and min(fps) >= MIN_FPS_TARGET and bool(loaded) and measured.recovered_after_s is not None,
        },
        "viewers": viewers,
        "attempts": [
            {"viewer": a.viewer, "at_s": round(a.at_s, 2), "status": a.status, "reason": a.reason}
            for a in measured.attempts
        ],
        "per_second_fps": {
            str(a.viewer): np.histogram(
                _arrivals(a, measured.started), bins=int(measured.load_end_s), range=(0, int(measured.load_end_s))
            )[0].tolist()
            for a in measured.admitted
        },
        "definitions": DEFINITIONS,
    }


def plot_overload(result: dict[str, Any], out: Path) -> bool:
    """Frames per second at each admitted viewer, and every refusal, against time; False without matplotlib."""
    plt = pyplot()
    if plt is None:
        return False
    figure, (rates, tries) = plt.subplots(2, 1, figsize=(9, 7), sharex=True, height_ratios=(3, 1))
    for viewer, counts in result["per_second_fps"].items():
        rates.plot(np.arange(len(counts)) + 0.5, counts, "-", lw=1, label=f"viewer {viewer}")
    rates.axhline(MIN_FPS_TARGET, color="r", ls="--", lw=1, label=f"target {MIN_FPS_TARGET:g} fps")
    rates.set_ylabel("frames decoded per second")
    rates.set_ylim(0, 30)
    rates.legend(fontsize=7, ncol=3)
    rates.set_title(
        f"{result['options']['viewers']} viewers arriving, max_sessions {result['options']['max_sessions']}: "
        f"{result['admitted']} admitted, min {result['min_fps']} fps"
    )
    attempts = result["attempts"]
    for status, marker in ((200, "o"), (503, "x"), (429, "+")):
        points = [(a["at_s"], a["viewer"]) for a in attempts if a["status"] == status]
        if points:
            tries.plot(*zip(*points, strict=True), marker, ms=4, ls="", label=str(status))
    tries.set_ylabel("viewer (-1: recovery)")
    tries.set_xlabel("seconds since the first arrival")
    tries.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(out, dpi=100)
    plt.close(figure)
    return True
