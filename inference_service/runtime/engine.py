"""The frame path every protocol shares: the model registry and one dynamic batcher per model and input kind.

Frames of one model batch together whichever call (or protocol) they came from.
Batchers follow the registry: a model that is evicted or reloaded gets fresh ones,
and the old ones finish what they hold before they close.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import numpy as np

from inference_service.config import InferenceConfig
from inference_service.metrics import InferenceMetrics
from inference_service.runtime.batcher import Batcher, BatchTimings, Completed
from inference_service.runtime.layout import CompactFrame
from inference_service.runtime.registry import LoadedModel, ModelRegistry
from inference_service.runtime.runs import run_compact, run_raw
from protos.lipsync.v1 import lipsync_pb2 as pb

RawTensors = dict[str, np.ndarray]


class InferenceEngine:
    def __init__(
        self, config: InferenceConfig, metrics: InferenceMetrics, registry: ModelRegistry | None = None
    ) -> None:
        self.config = config
        self.metrics = metrics
        self._executor = ThreadPoolExecutor(config.batching.workers, thread_name_prefix="lipsync-run")
        self._loader = ThreadPoolExecutor(1, thread_name_prefix="lipsync-load")
        self.registry = registry or ModelRegistry(config, self._loader)
        self.registry.on_change.append(self._on_registry_change)
        self._compact: dict[str, tuple[LoadedModel, Batcher[CompactFrame, bytes]]] = {}
        self._raw: dict[str, tuple[LoadedModel, Batcher[RawTensors, list[pb.Tensor]]]] = {}
        self._callers = 0  # open calls: whether a batch window can pay off
        self._retired: set[asyncio.Task[None]] = set()

    @contextmanager
    def caller(self) -> Iterator[None]:
        """Held while a call may send frames: a lone caller's frames skip the batch window."""
        self._callers += 1
        try:
            yield
        finally:
            self._callers -= 1

    def submit_compact(
        self, model: LoadedModel, frame: CompactFrame, received: float, budget_s: float | None
    ) -> asyncio.Future[Completed[bytes]]:
        batcher = self._batcher(self._compact, model, lambda frames: run_compact(model, frames))
        return batcher.submit(frame, received, budget_s)

    def submit_raw(
        self, model: LoadedModel, tensors: RawTensors, received: float, budget_s: float | None
    ) -> asyncio.Future[Completed[list[pb.Tensor]]]:
        batcher = self._batcher(self._raw, model, lambda frames: run_raw(model, frames))
        return batcher.submit(tensors, received, budget_s)

    def completed(self, model_id: str, timings: BatchTimings, received: float) -> float:
        """A frame's result is ready: its latency and queueing go to the metrics; returns seconds since receipt."""
        total = time.perf_counter() - received
        self.metrics.latency.labels(model_id).observe(total)
        self.metrics.queue_time.labels(model_id).observe(timings.queue_us / 1e6)
        return total

    def _batcher(
        self,
        batchers: dict[str, tuple[LoadedModel, Batcher[Any, Any]]],
        model: LoadedModel,
        runner: Callable[[list[Any]], list[Any]],
    ) -> Batcher[Any, Any]:
        model_id = model.spec.id
        entry = batchers.get(model_id)
        if entry is not None and entry[0] is model:
            return entry[1]

        def on_batch(size: int, seconds: float) -> None:
            self.metrics.batch_size.labels(model_id).observe(size)
            self.metrics.compute_time.labels(model_id).observe(seconds)

        batcher: Batcher[Any, Any] = Batcher(
            model_id, runner, self.config.batching, self._executor, on_batch, callers=lambda: self._callers
        )
        if entry is not None:
            self._retire(entry[1])
        batchers[model_id] = (model, batcher)
        return batcher

    def _retire(self, batcher: Batcher[Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(batcher.close())
        self._retired.add(task)
        task.add_done_callback(self._retired.discard)

    def _retire_stale(
        self, batchers: dict[str, tuple[LoadedModel, Batcher[Any, Any]]], loaded: dict[str, LoadedModel]
    ) -> None:
        for model_id, (model, batcher) in list(batchers.items()):
            if loaded.get(model_id) is not model:
                del batchers[model_id]
                self._retire(batcher)

    def _on_registry_change(self) -> None:
        loaded = {model.spec.id: model for model in self.registry.loaded()}
        self._retire_stale(self._compact, loaded)
        self._retire_stale(self._raw, loaded)
        self.metrics.loaded_models.set(len(loaded))
        self.metrics.model_memory.set(self.registry.memory_bytes())
        self.metrics.provider.clear()
        for model in loaded.values():
            self.metrics.provider.labels(model.spec.id, model.shared.provider.in_use[0]).set(1)

    async def close(self) -> None:
        for batchers in (self._compact, self._raw):
            for _, batcher in batchers.values():
                await batcher.close()
            batchers.clear()
        await asyncio.gather(*self._retired, return_exceptions=True)
        self._executor.shutdown(wait=True, cancel_futures=True)
        self._loader.shutdown(wait=True, cancel_futures=True)
