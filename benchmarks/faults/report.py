"""The faults bench's JSON: per fault what the viewers and /health saw, against the targets."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from benchmarks.e2e.analysis import MOVING_MIN, MOVING_OVER_IDLE
from benchmarks.e2e.report import machine_info
from benchmarks.e2e.services import MODEL
from benchmarks.faults.analysis import OUTAGE_SETTLE_S, analyse
from benchmarks.faults.injector import PROBE_BUDGET_S
from benchmarks.faults.run import VIEWERS, Measured

MAX_GAP_MS = 100.0
MAX_LIPS_AGAIN_S = 5.0

DEFINITIONS = {
    "sigkill": "SIGKILL to the inference child; the bench (not a supervisor: it started the children itself) "
    "restarts it down_s later with the same command line and environment, on the same port. The inference "
    "is back when the new process answers grpc.health.v1 SERVING, so lips_again_s does not include the "
    "restart; lips_again_after_restart_issued_s and lips_again_after_injection_s do",
    "sigstop": "SIGSTOP to the inference child, SIGCONT down_s later; the inference is back at the SIGCONT",
    "longest_gap_ms": "the longest time between the arrivals (last RTP packet) of consecutive video frames at a "
    "viewer, from the injection to the end of the fault's window (the frame before the injection included); "
    "longest_gap_decoded_ms: the same on aiortc's decoded output",
    "frames_lost": "frames missing from the pts sequence over the same window",
    "lips_again_s": "inference back -> arrival of the first frame with an open mouth "
    f"(motion above max({MOVING_MIN:g}, {MOVING_OVER_IDLE:g} x the idle frames' 95th percentile) before the speech)",
    "moving_pct_during_outage": f"frames with an open mouth from {OUTAGE_SETTLE_S:g} s after the injection until "
    "the inference was back (the edge shows a still mouth while it cannot infer)",
    "health": "GET /health polled every 100 ms: when it went 503 after the injection, when it answered 200 "
    "again after the inference was back; status 0 in not_200_spans_s: no answer within 2 s",
    "edge_stream_open_after_back_s": "the session's state (GET /sessions/{id}, polled every 0.5 s): inference "
    "back -> the first poll from which its inference stream stayed open (inference_connected) to the window's end; "
    "edge_late_frames: frames the edge counted late (shown with a still mouth) over the window",
    "inference_cpu_pct_after_back": "CPU of the inference process from its return to the window's end "
    "(2 sessions' mouths cost tens of %: near 0 means it computes none)",
    "inference_probe_after_window": f"after the window, one frame with a {1000 * PROBE_BUDGET_S:g} ms budget sent "
    "straight to the inference service (InferenceClient.infer): 'ok' or its error",
    "control": "the same continuity numbers over the control_s seconds before the first fault",
    "window_s": "injection -> end of the observation (lips moving again at every viewer, then tail_s more)",
}


def _worst(values: list[float | None]) -> float | None:
    """The largest value; None if any viewer has none (never measured counts as the worst)."""
    return None if any(v is None for v in values) else max(v for v in values if v is not None)


def fault_targets(fault: dict[str, Any]) -> dict[str, dict[str, Any]]:
    gap = _worst([v["longest_gap_ms"] for v in fault["viewers"]])
    lips = _worst([v["lips_again_s"] for v in fault["viewers"]])
    return {
        "longest_gap_ms": {
            "measured": gap,
            "target": f"<= {MAX_GAP_MS:g}",
            "met": gap is not None and gap <= MAX_GAP_MS,
        },
        "lips_again_s": {
            "measured": lips,
            "target": f"<= {MAX_LIPS_AGAIN_S:g}",
            "met": lips is not None and lips <= MAX_LIPS_AGAIN_S,
        },
    }


def summarise(measured: Measured) -> dict[str, Any]:
    analysed = analyse(measured)
    machine = machine_info()
    machine["load_average_1m"] = {"start": round(measured.load_before, 2), "end": machine["load_average_1m"]}
    for fault in analysed["faults"]:
        fault["frames_lost"] = sum(v.get("frames_lost", 0) for v in fault["viewers"])
        fault["targets"] = fault_targets(fault)
    return {
        "bench": "faults",
        "mode": "quick" if measured.options.quick else "full",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine,
        "model": MODEL,
        "avatar": {"name": measured.avatar.name, "width": measured.avatar.width, "height": measured.avatar.height},
        "viewers": VIEWERS,
        "options": asdict(measured.options),
        "speech_frames": measured.speech_frames,
        "moving_thresholds": [round(t, 2) for t in measured.thresholds],
        "control": analysed["control"],
        "faults": analysed["faults"],
        "targets": {f"{f['fault']}.{name}": check for f in analysed["faults"] for name, check in f["targets"].items()},
        "definitions": DEFINITIONS,
    }
