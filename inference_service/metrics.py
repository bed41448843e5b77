"""Prometheus metrics of the inference service, on their own registry per server."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64, 128, 256)


class InferenceMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter("lipstream_inference_frames", "Frames received", ["model"], registry=r)
        self.failures = Counter(
            "lipstream_inference_frame_failures", "Frames answered with an error", ["model", "code"], registry=r
        )
        self.latency = Histogram(
            "lipstream_inference_latency_seconds",
            "Receipt to result, per frame",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_time = Histogram(
            "lipstream_inference_queue_seconds",
            "Receipt to start of compute",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.compute_time = Histogram(
            "lipstream_inference_batch_compute_seconds",
            "Model run per batch",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "lipstream_inference_batch_size", "Frames per model run", ["model"], buckets=BATCH_BUCKETS, registry=r
        )
        self.loaded_models = Gauge("lipstream_inference_loaded_models", "Models loaded now", registry=r)
        self.model_memory = Gauge("lipstream_inference_model_memory_bytes", "Memory of loaded models", registry=r)
        self.provider = Gauge(
            "lipstream_inference_provider",
            "1 for the provider each loaded model runs on",
            ["model", "provider"],
            registry=r,
        )
