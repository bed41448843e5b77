"""The soak's JSON: the series, the baseline and the end, the targets, and whether memory grows per cycle."""

from __future__ import annotations

import os
import statistics
from collections import Counter
from datetime import UTC, datetime
from typing import Any, NamedTuple

import numpy as np

from benchmarks.e2e.report import machine_info
from benchmarks.soak.cycles import KINDS
from benchmarks.soak.probe import COUNTED, counted
from benchmarks.soak.run import MAX_SESSIONS, Measured

RSS_GROWTH_TARGET_MB = 20.0
LEAK_SLOPE_MB_PER_100 = 0.5  # growth still this steep over the second half of the run reads as a leak

DEFINITIONS = {
    "cycle": "one session opened and ended; kinds in rotation: offer_delete (POST /offer, speak, DELETE "
    "/sessions/{id} after the utterance), whep_delete (WHEP, speak, DELETE /whep/sessions/{id} with the "
    "X-Session-Token as Bearer, mid-utterance), peer_close (POST /offer, speak, the peer closes mid-utterance, "
    "nothing said to the edge), never_answered (POST /offer, the answer is never applied; the edge's "
    "connect timeout ends it)",
    "baseline": "the edge once every session of the warm-up is gone and its counts held still for a second",
    "final": "the same after the last cycle",
    "during": "a sample every sample_every cycles, sessions live",
    "gone_after_s": "client let go (peer closed, or offer answered) -> GET /sessions/{id} answers 404",
    "rss_slope_mb_per_100_cycles": "least-squares slope of the during samples' RSS against cycles, over the "
    "whole run and each half: growth in the second half (>= 0.5 MB/100 cycles and over twice its standard error) "
    "reads as a leak, anything less as a plateau (the allocator keeping freed memory, or a bounded cache)",
    "admission_refusals": "503 answers to new sessions, waited out (0.5 s) and retried, by reason: full "
    "(max_sessions), connecting (max_connecting), overloaded (recent late frames over overload_late_pct)",
    "allocator_environment": "MALLOC_* and PYTHONMALLOC variables this run and its children had (none: glibc's "
    "defaults), for runs that test whether RSS growth is the allocator's",
    "sockets": "psutil net_connections(kind='all') of the edge: tcp (and tcp_<state>), udp, unix",
}


def _spread(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {
        "median": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
    }


class Slope(NamedTuple):
    """A least-squares slope in MB per 100 cycles, and its standard error (None with under four points)."""

    per_100: float
    error: float | None


def slope(points: list[dict[str, Any]], key: str = "rss_mb") -> Slope | None:
    """None with fewer than three points."""
    if len(points) < 3:
        return None
    cycles = np.array([p["cycle"] for p in points], float)
    values = np.array([p[key] for p in points], float)
    if len(points) < 4:
        return Slope(round(float(np.polyfit(cycles, values, 1)[0]) * 100, 3), None)
    fit, covariance = np.polyfit(cycles, values, 1, cov=True)
    return Slope(round(float(fit[0]) * 100, 3), round(float(np.sqrt(covariance[0, 0])) * 100, 3))


def memory_trend(during: list[dict[str, Any]]) -> dict[str, Any]:
    """Slopes over the whole run and its halves, and what they say.

    Growth still going on in the second half, steeper than LEAK_SLOPE_MB_PER_100 and more than
    twice its standard error (the series saw-tooths as the allocator gives memory back), is
    leak-like; anything else is a plateau.
    """
    half = len(during) // 2
    whole, first, second = slope(during), slope(during[: half + 1]), slope(during[half:])
    if second is None:
        verdict = "too few samples"
    elif second.per_100 >= LEAK_SLOPE_MB_PER_100 and (second.error is None or second.per_100 > 2 * second.error):
        verdict = "steady growth (a leak-like slope in the second half)"
    else:
        verdict = "plateau (no significant growth in the second half)"
    return {
        "rss_slope_mb_per_100_cycles": {
            "all": whole.per_100 if whole else None,
            "first_half": first.per_100 if first else None,
            "second_half": second.per_100 if second else None,
            "second_half_standard_error": second.error if second else None,
        },
        "verdict": verdict,
    }


def _sockets_delta(baseline: dict[str, Any], final: dict[str, Any]) -> dict[str, int]:
    kinds = set(baseline["sockets"]) | set(final["sockets"])
    deltas = {k: final["sockets"].get(k, 0) - baseline["sockets"].get(k, 0) for k in sorted(kinds)}
    return {k: v for k, v in deltas.items() if v or k == "total"}


def targets(baseline: dict[str, Any], final: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Threads, descriptors and sockets back to the baseline; RSS within RSS_GROWTH_TARGET_MB of it."""
    checks: dict[str, dict[str, Any]] = {}
    for name in COUNTED:
        start, end = counted(baseline, name), counted(final, name)
        checks[name] = {"baseline": start, "final": end, "target": "<= baseline", "met": end <= start}
    growth = round(final["rss_mb"] - baseline["rss_mb"], 2)
    checks["rss_growth_mb"] = {
        "measured": growth,
        "target": f"<= {RSS_GROWTH_TARGET_MB:g}",
        "met": growth <= RSS_GROWTH_TARGET_MB,
    }
    return checks


def summarise(measured: Measured) -> dict[str, Any]:
    options, cycles = measured.options, measured.cycles
    machine = machine_info()
    machine["load_average_1m"] = {"start": round(measured.load_before, 2), "end": machine["load_average_1m"]}
    baseline, final = measured.warmup_end, measured.final
    kinds = {
        kind: {
            "cycles": sum(c.kind == kind for c in cycles),
            "seconds": _spread([c.seconds for c in cycles if c.kind == kind]),
            "gone_after_s": _spread([c.gone_after_s for c in cycles if c.kind == kind and c.gone_after_s is not None]),
        }
        for kind in KINDS
    }
    measured_failures = [f for f in measured.failures if f["index"] >= options.warmup]
    return {
        "bench": "soak",
        "mode": "quick" if options.quick else "full",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine,
        "cycles_asked": options.cycles,
        "cycles_done": len(cycles) + len(measured_failures),
        "cycles_failed": len(measured_failures),
        "warmup_cycles": options.warmup,
        "concurrency": options.concurrency,
        "sample_every": options.sample_every,
        "utterance_s": options.utterance_s,
        "seconds": round(measured.seconds, 1),
        "cycles_per_minute": round(60 * len(cycles) / measured.seconds, 1) if measured.seconds else None,
        "edge": {
            "max_sessions": MAX_SESSIONS,
            "environment": options.edge_environment(),
            "why": "connect_timeout_s lowered so unanswered offers do not hold the connecting slots (default 10 s); "
            "the per-client session rate limit (30 a minute, burst 10) raised: every session comes from one address",
        },
        "allocator_environment": {k: v for k, v in os.environ.items() if k.startswith(("MALLOC_", "PYTHONMALLOC"))},
        "admission_refusals": dict(Counter(why for c in cycles for why in c.refusals)),
        "kinds": kinds,
        "baseline": baseline,
        "final": final,
        "delta": {
            "rss_mb": round(final["rss_mb"] - baseline["rss_mb"], 2),
            "uss_mb": round(final["uss_mb"] - baseline["uss_mb"], 2),
            "threads": final["threads"] - baseline["threads"],
            "fds": final["fds"] - baseline["fds"],
            "sockets": _sockets_delta(baseline, final),
        },
        "memory_trend": memory_trend(measured.during),
        "targets": targets(baseline, final),
        "during": measured.during,
        "failures": measured.failures,
        "definitions": DEFINITIONS,
    }
