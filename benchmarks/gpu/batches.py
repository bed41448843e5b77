"""The model alone at each batch size: frames/s and the p50/p99 of one batch's run, in this process.

The session is opened as the server opens it (`runtime.backends.open_session`), on the model's
own float32 inputs: this is the device's compute, without the wire, the layout or the batcher.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.gpu import GpuBenchError
from benchmarks.gpu.setup import Setup
from inference_service.config import RuntimeConfig
from inference_service.runtime.backends import GPU_IN_USE, open_session
from inference_service.runtime.probe import random_feeds
from inference_service.runtime.providers import requested_providers

WARM_UP_RUNS = 3
MIN_RUNS = 5


def open_model(setup: Setup, precision: str, work: Path) -> tuple[Any, str]:
    """The session and the provider it runs on; GpuBenchError when a GPU was asked for and is not used."""
    spec = setup.model_spec(precision, work)
    runtime = RuntimeConfig.model_validate(setup.runtime(precision))
    requested = requested_providers(runtime.providers)
    session, choice = open_session(setup.model_path(precision, work), spec, runtime, requested)
    in_use = choice.in_use[0]
    if setup.device == "cuda" and in_use not in GPU_IN_USE:
        raise GpuBenchError(f"--device cuda, but the model runs on {in_use}: {choice.fallback_reason}")
    return session, in_use


def sweep(session: Any, batch_sizes: list[int], seconds: float) -> list[dict[str, Any]]:
    outputs = [arg.name for arg in session.get_outputs()]
    results = []
    for batch in batch_sizes:
        feeds = random_feeds(session.get_inputs(), batch)
        for _ in range(WARM_UP_RUNS):
            session.run(outputs, feeds)
        times: list[float] = []
        started = time.perf_counter()
        while len(times) < MIN_RUNS or time.perf_counter() - started < seconds:
            before = time.perf_counter()
            session.run(outputs, feeds)
            times.append(time.perf_counter() - before)
        runs_ms = np.array(times) * 1000
        results.append(
            {
                "batch": batch,
                "runs": len(times),
                "frames_per_s": batch * len(times) / sum(times),
                "latency_ms": {"p50": float(np.percentile(runs_ms, 50)), "p99": float(np.percentile(runs_ms, 99))},
            }
        )
    return results
