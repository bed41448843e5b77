"""The bench's JSON: each phase as measured, a session's cost in CPU and memory, the targets."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from benchmarks.capacity.run import Options
from benchmarks.e2e.report import machine_info

IDLE_TARGET_PCT = 1.0
SPEAKING_TARGET_PCT = 5.0

DEFINITIONS = {
    "cpu_pct": "user + system CPU of every process of the edge (the front and its workers, or the one edge "
    "process) over the phase, as a share of one core; inference runs apart and is not counted",
    "per_session.cpu_pct": "(the phase's edge CPU - the empty edge's) / sessions",
    "per_session.loop_cpu_pct": "the same for the edge processes' main threads alone: their event loops (aiortc's "
    "RTP, SRTP and data channels, the inference client, Opus); the rest is the threads that composite and "
    "encode video and decode speech",
    "per_session.pss_mb": "(the edge processes' summed PSS with the idle sessions - without) / sessions; PSS splits "
    "pages shared between processes (the mapped avatar frames, libraries) between them",
    "clients_cpu_pct": "the bench process: the aiortc viewers receiving every session (they count its packets "
    "and decode nothing)",
    "frames": "the sessions' own counters over the phase (GET /sessions/{id}): frames sent, speaking, late "
    "(inference missed the deadline: shown idle), and sent from the shared idle loop",
}


def _total(memory: dict[str, dict[str, Any]], key: str) -> float:
    return sum(float(entry[key]) for entry in memory.values())


def summarise(options: Options, measured: dict[str, Any], label: str, load_before: float) -> dict[str, Any]:
    phases = measured["phases"]
    sessions = options.sessions
    empty = phases["empty"]
    per_session: dict[str, Any] = {
        "cpu_pct": {
            name: round((phases[name]["edge_cpu_pct"] - empty["edge_cpu_pct"]) / sessions, 2)
            for name in ("idle", "speaking")
        },
        "loop_cpu_pct": {
            name: round((phases[name]["edge_loop_cpu_pct"] - empty["edge_loop_cpu_pct"]) / sessions, 2)
            for name in ("idle", "speaking")
        },
        **{
            key: round((_total(phases["idle"]["memory"], key) - _total(empty["memory"], key)) / sessions, 2)
            for key in ("pss_mb", "rss_mb")
        },
    }
    for phase in phases.values():
        for key in ("edge_cpu_pct", "edge_loop_cpu_pct", "inference_cpu_pct", "clients_cpu_pct"):
            phase[key] = round(phase[key], 2)
    machine = machine_info()
    machine["load_average_1m"] = {"start": round(load_before, 2), "end": machine["load_average_1m"]}
    workers = measured["health_with_sessions"].get("workers", [])
    goals = {"idle_cpu_pct": (per_session["cpu_pct"]["idle"], IDLE_TARGET_PCT)}
    goals["speaking_cpu_pct"] = (per_session["cpu_pct"]["speaking"], SPEAKING_TARGET_PCT)
    return {
        "bench": "edge-capacity",
        "label": label,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine,
        "edge_source": str(options.edge_source) if options.edge_source else "this checkout",
        "workers": options.workers,
        "sessions": sessions,
        "seconds_per_phase": options.seconds,
        "per_session": per_session,
        "sessions_per_worker": {str(w["worker"]): w["sessions"] for w in workers},
        "phases": phases,
        "targets": {
            name: {"measured": value, "target": f"<= {goal}", "met": value <= goal}
            for name, (value, goal) in goals.items()
        },
        "definitions": DEFINITIONS,
    }
