"""The bench's JSON: the levels measured, headline numbers over the levels that held, the targets."""

from __future__ import annotations

import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.e2e.analysis import MOVING_MIN, MOVING_OVER_IDLE, median
from benchmarks.e2e.run import Measured
from benchmarks.e2e.services import MODEL

DEFINITIONS = {
    "arrival": "when the last RTP packet of a frame reached the client; aiortc's receiver adds a frame (it "
    "releases a video frame when the next one's first packet arrives) and its audio jitter buffer",
    "late_frame_pct": "per speaking frame, over every session of a level: the server's late_frames (shown idle, "
    "inference missed its deadline) + frames missing at the client (gaps in RTP timestamps) + "
    "frames arriving more than one frame (40 ms) after their slot (paced send time plus the "
    "session's median transit)",
    "capacity_sessions": "the largest level (1, 2, 4, 6, 8 ... sessions, all speaking) with late_frame_pct <= 1",
    "speech_to_lips_frames": "response to POST /speech received -> arrival of the first frame with an open mouth, "
    "at 25 fps; headline latencies and offsets: median over every session of the levels "
    "that held (latency_samples)",
    "interrupt_to_idle_frames": "POST /interrupt sent -> arrival of the first frame after the last open-mouth frame",
    "av_offset_ms": "lag of the mouth motion behind the audio RMS envelope at the peak of their cross-correlation, "
    "on arrival at the client; positive = video late. av_offset_ms_by_axis adds aiortc's decoded "
    "output and the sender's clock through RTCP sender reports",
    "rss_mb.per_session": "edge RSS growth per extra idle session, between 1 and the most sessions of the run, "
    "measured before any speech",
    "moving": f"mouth motion above max({MOVING_MIN:g}, {MOVING_OVER_IDLE:g} x the idle frames' 95th percentile)",
}


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on; the load average says how busy the shared machine was."""
    cpuinfo = Path("/proc/cpuinfo")
    models = (
        [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")]
        if cpuinfo.exists()
        else []
    )
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": models[0] if models else platform.processor(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def targets(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The performance targets (README, Benchmarks) next to what was measured."""
    goals = {
        "capacity_sessions": (result["capacity_sessions"], ">=", 6),
        "speech_to_lips_frames": (result["speech_to_lips_frames"], "<=", result["model_lookahead_frames"] + 3),
        "interrupt_to_idle_frames": (result["interrupt_to_idle_frames"], "<=", 2),
        "abs_av_offset_ms": (abs(result["av_offset_ms"]), "<=", 20),
        "rss_mb_per_session": (result["rss_mb"]["per_session"], "<=", 30),
    }
    return {
        name: {"measured": value, "target": f"{sign} {goal}", "met": value >= goal if sign == ">=" else value <= goal}
        for name, (value, sign, goal) in goals.items()
    }


def summarise(measured: Measured) -> dict[str, Any]:
    """Capacity from the last level that held; latency and sync over every session of the levels that held."""
    levels, options = measured.levels, measured.options
    held = [level for level in levels if level["holds"]]
    sessions = [session for level in (held or levels[:1]) for session in level["per_session"]]
    machine = machine_info()
    machine["load_average_1m"] = {"start": round(measured.load_before, 2), "end": machine["load_average_1m"]}
    avatar = measured.avatar
    result = {
        "bench": "e2e",
        "mode": "quick" if options.quick else "full",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine,
        "avatar": {"name": avatar.name, "width": avatar.width, "height": avatar.height},
        "model": MODEL,
        "model_lookahead_frames": measured.lookahead,
        "speech_seconds": options.seconds,
        "capacity_sessions": held[-1]["sessions"] if held else 0,
        "late_frame_pct": (held[-1] if held else levels[0])["late_frame_pct"],
        "latency_samples": len(sessions),
        "speech_to_lips_frames": median([s["speech_to_lips_frames"] for s in sessions]),
        "interrupt_to_idle_frames": median([s["interrupt"]["frames"] for s in sessions]),
        "av_offset_ms": median([s["av_offset_ms"]["packet_arrival"] for s in sessions]),
        "av_offset_ms_by_axis": {
            axis: median([s["av_offset_ms"][axis] for s in sessions]) for axis in sessions[0]["av_offset_ms"]
        },
        "rss_mb": measured.memory,
        "levels": levels,
        "definitions": DEFINITIONS,
    }
    result["targets"] = targets(result)
    return result
