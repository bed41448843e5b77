"""`/health` and `/metrics` of every worker as one answer: totals, and each worker's own.

Health: each worker that is up is asked for its `/health`; the front adds the ones that are down
(restarting) and the totals. Metrics: each worker's Prometheus series get a `worker` label and are
merged family by family, so one scrape sees every worker; the front adds whether each worker is up
and how often it was restarted.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import aiohttp
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from signaling.workers.pool import Worker, WorkerPool

ASK_TIMEOUT = aiohttp.ClientTimeout(total=3)


async def _ask(worker: Worker, path: str) -> tuple[int, str] | None:
    """GET `path` from the worker: (status, text), or None when it does not answer."""
    if worker.http is None:
        return None
    try:
        async with worker.http.get(f"http://worker{path}", timeout=ASK_TIMEOUT) as response:
            return response.status, await response.text()
    except (aiohttp.ClientError, TimeoutError):
        return None


async def health(pool: WorkerPool) -> tuple[int, dict[str, Any]]:
    """(status, body): 200 while at least one worker takes sessions and inference answers; 503 otherwise."""
    answers = await asyncio.gather(*(_ask(worker, "/health") for worker in pool.workers))
    workers: list[dict[str, Any]] = []
    for worker, answer in zip(pool.workers, answers, strict=True):
        entry: dict[str, Any] = {"worker": worker.index, "pid": worker.pid, "up": answer is not None}
        entry.update({"restarts": worker.restarts, "sessions": worker.sessions})
        if answer is not None:
            entry["health"] = json.loads(answer[1]) if answer[1] else {}
        workers.append(entry)
    reports = [entry["health"] for entry in workers if "health" in entry]
    unreachable = [report["inference"] for report in reports if not report.get("inference", {}).get("reachable")]
    status = "draining" if pool.draining else "degraded" if not reports or unreachable else "ok"
    body: dict[str, Any] = {
        "status": status,
        "inference": unreachable[0] if unreachable else reports[0]["inference"] if reports else None,
        "sessions": sum(worker.sessions for worker in pool.workers),
        "max_sessions": pool.config.sessions.max_sessions,
        "late_frame_pct": max((report.get("late_frame_pct", 0.0) for report in reports), default=0.0),
        "workers_up": len(reports),
        "workers": workers,
    }
    if not reports:
        body["reason"] = "no edge worker is up"
    return (200 if status == "ok" else 503), body


class _Merged:
    """A collector that yields the families it was given (prometheus_client renders them)."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def merge(texts: dict[int, str], pool: WorkerPool) -> bytes:
    """Every worker's series with its `worker` label, family by family, and the front's own."""
    families: dict[str, Metric] = {}
    for index, text in texts.items():
        for family in text_string_to_metric_families(text):
            merged = families.setdefault(family.name, Metric(family.name, family.documentation, family.type))
            merged.samples.extend(
                Sample(s.name, {**s.labels, "worker": str(index)}, s.value, s.timestamp, s.exemplar)
                for s in family.samples
            )
    up = GaugeMetricFamily("lipstream_edge_worker_up", "Whether the edge worker serves", labels=["worker"])
    restarts = GaugeMetricFamily(
        "lipstream_edge_worker_restarts", "Times the edge worker was restarted", labels=["worker"]
    )
    for worker in pool.workers:
        up.add_metric([str(worker.index)], 1.0 if worker.up else 0.0)
        restarts.add_metric([str(worker.index)], float(worker.restarts))
    registry = CollectorRegistry()
    registry.register(_Merged([*families.values(), up, restarts]))
    return generate_latest(registry)


async def metrics(pool: WorkerPool) -> bytes:
    answers = await asyncio.gather(*(_ask(worker, "/metrics") for worker in pool.workers))
    return merge({w.index: a[1] for w, a in zip(pool.workers, answers, strict=True) if a and a[0] == 200}, pool)
