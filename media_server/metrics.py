"""Prometheus metrics of one edge, on their own registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

STAGE_BUCKETS = (0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512)


class EdgeMetrics:
    """Prometheus metrics of one edge, on their own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.sessions = Gauge("lipstream_edge_sessions", "Live sessions", registry=r)
        self.sessions_created = Counter("lipstream_edge_sessions_created", "Sessions created", registry=r)
        self.frames_sent = Counter("lipstream_edge_frames_sent", "Video frames sent", registry=r)
        self.shared_frames = Counter(
            "lipstream_edge_shared_frames", "Video frames sent from an avatar's shared idle loop", registry=r
        )
        self.speaking_frames = Counter("lipstream_edge_speaking_frames", "Frames that should move the lips", registry=r)
        self.late_frames = Counter(
            "lipstream_edge_late_frames", "Speaking frames shown idle because inference missed the deadline", registry=r
        )
        self.skipped_frames = Counter(
            "lipstream_edge_skipped_frames", "Frames skipped to catch up a stalled clock", registry=r
        )
        self.stage_seconds = Histogram(
            "lipstream_edge_stage_seconds", "Per-frame time of each stage", ["stage"], buckets=STAGE_BUCKETS, registry=r
        )
        self.utterances = Counter("lipstream_edge_utterances", "Utterances queued", ["kind"], registry=r)
        self._stages: dict[str, Histogram] = {}

    def stage(self, name: str) -> Histogram:
        """The stage's histogram (looked up once: `labels` costs more than the observation)."""
        child = self._stages.get(name)
        if child is None:
            child = self._stages[name] = self.stage_seconds.labels(name)
        return child
