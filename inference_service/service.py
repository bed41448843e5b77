"""The lipsync.v1 servicer: validation, batching, ordering, errors as status codes."""

from __future__ import annotations

import asyncio
import logging
import platform
import time
from collections.abc import AsyncIterator, Awaitable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import numpy as np

import lipstream
from inference_service.batcher import Batcher, BatchTimings
from inference_service.config import InferenceConfig
from inference_service.layout import LayoutError, validate_compact
from inference_service.metrics import InferenceMetrics
from inference_service.providers import CPU
from inference_service.raw import batch_key, decode_raw, encode_tensor
from inference_service.registry import LoadedModel, ModelLoadError, ModelRegistry, UnknownModelError
from protos.lipsync.v1 import lipsync_pb2 as pb
from protos.lipsync.v1 import lipsync_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

# Frames one stream may have in flight before the server stops reading from it:
# back-pressure for a client that sends faster than the model can serve.
STREAM_INFLIGHT = 64
_STATUS_BY_CODE = {status.value[0]: status for status in grpc.StatusCode}


class FrameError(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def _as_frame_error(exc: BaseException) -> FrameError:
    if isinstance(exc, FrameError):
        return exc
    if isinstance(exc, UnknownModelError):
        return FrameError(grpc.StatusCode.NOT_FOUND, str(exc))
    if isinstance(exc, ModelLoadError):
        return FrameError(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
    if isinstance(exc, LayoutError):
        return FrameError(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
    if isinstance(getattr(exc, "code", None), grpc.StatusCode):  # the batcher's own errors
        return FrameError(exc.code, str(exc))
    log.error("frame failed", exc_info=exc)
    return FrameError(grpc.StatusCode.INTERNAL, f"internal error: {exc}")


def _run_compact(model: LoadedModel, payloads: list[tuple]) -> list[bytes]:
    crops = [(crop, crop_format) for crop, crop_format, _, _ in payloads]
    inputs = model.layout.build_inputs(crops, [audio for _, _, audio, _ in payloads])
    output = model.session.run([model.spec.output], inputs)[0]
    return model.layout.encode_outputs(output, [out_format for *_, out_format in payloads])


def _run_raw(model: LoadedModel, payloads: list[dict[str, np.ndarray]]) -> list[list[pb.Tensor]]:
    """Frames whose tensors agree beyond the batch axis run together."""
    results: list[list[pb.Tensor] | None] = [None] * len(payloads)
    groups: dict[tuple, list[int]] = {}
    for index, arrays in enumerate(payloads):
        groups.setdefault(batch_key(arrays), []).append(index)
    names = model.shared.outputs
    for indices in groups.values():
        feeds = {name: np.concatenate([payloads[i][name] for i in indices]) for name in payloads[indices[0]]}
        outputs = model.session.run(names, feeds)
        offset = 0
        for i in indices:
            count = next(iter(payloads[i].values())).shape[0]
            results[i] = [encode_tensor(name, out[offset : offset + count]) for name, out in zip(names, outputs)]
            offset += count
    return results  # type: ignore[return-value]


class LipSyncService(pb_grpc.LipSyncServicer):
    def __init__(self, config: InferenceConfig, metrics: InferenceMetrics,
                 registry: ModelRegistry | None = None) -> None:
        self.config = config
        self.metrics = metrics
        self._executor = ThreadPoolExecutor(config.batching.workers, thread_name_prefix="lipsync-run")
        self._loader = ThreadPoolExecutor(1, thread_name_prefix="lipsync-load")
        self.registry = registry or ModelRegistry(config, self._loader)
        self.registry.on_change.append(self._on_registry_change)
        self._batchers: dict[tuple[str, str], tuple[LoadedModel, Batcher]] = {}
        self._callers = 0  # open StreamInfer and Infer calls: whether a batch window can pay off
        self._retired: set[asyncio.Task] = set()

    # -- frame path -------------------------------------------------------
    def _batcher(self, model: LoadedModel, kind: str) -> Batcher:
        key = (model.spec.id, kind)
        entry = self._batchers.get(key)
        if entry is not None and entry[0] is model:
            return entry[1]
        runner = (lambda p: _run_compact(model, p)) if kind == "compact" else (lambda p: _run_raw(model, p))
        model_id = model.spec.id

        def on_batch(size: int, seconds: float) -> None:
            self.metrics.batch_size.labels(model_id).observe(size)
            self.metrics.compute_time.labels(model_id).observe(seconds)

        batcher = Batcher(model_id, runner, self.config.batching, self._executor, on_batch,
                          callers=lambda: self._callers)
        if entry is not None:
            self._retire(entry[1])
        self._batchers[key] = (model, batcher)
        return batcher

    def _retire(self, batcher: Batcher) -> None:
        task = asyncio.get_running_loop().create_task(batcher.close())
        self._retired.add(task)
        task.add_done_callback(self._retired.discard)

    def _on_registry_change(self) -> None:
        loaded = {model.spec.id: model for model in self.registry.loaded()}
        for key, (model, batcher) in list(self._batchers.items()):
            if loaded.get(key[0]) is not model:
                del self._batchers[key]
                self._retire(batcher)
        self.metrics.loaded_models.set(len(loaded))
        self.metrics.model_memory.set(self.registry.memory_bytes())
        self.metrics.provider.clear()
        for model in loaded.values():
            self.metrics.provider.labels(model.spec.id, model.shared.provider.in_use[0]).set(1)

    def _failure(self, request: pb.FrameRequest, exc: BaseException) -> pb.FrameResult:
        error = _as_frame_error(exc)
        self.metrics.failures.labels(request.model, error.code.name).inc()
        failure = pb.Error(code=error.code.value[0], message=str(error))
        return pb.FrameResult(frame_id=request.frame_id, error=failure)

    def _submit(self, model: LoadedModel, request: pb.FrameRequest, received: float,
                budget_s: float | None) -> tuple[asyncio.Future, int]:
        """Validate and queue one frame; returns the batcher's future and the output format."""
        if request.budget_us:
            frame_budget = request.budget_us / 1e6
            budget_s = min(budget_s, frame_budget) if budget_s else frame_budget
        kind = request.WhichOneof("input")
        out_format = pb.IMAGE_FORMAT_UNSPECIFIED
        if kind == "compact":
            crop_format, out_format = validate_compact(model.spec, request.compact)
            payload: Any = (request.compact.crop, crop_format, request.compact.audio, out_format)
        elif kind == "raw":
            payload = decode_raw(request.raw, model.shared.inputs)
        else:
            raise LayoutError("input: the frame carries neither a compact nor a raw input")
        return self._batcher(model, kind).submit(payload, received, budget_s), out_format

    async def _complete(self, request: pb.FrameRequest, model: LoadedModel, future: asyncio.Future,
                        out_format: int, received: float) -> pb.FrameResult:
        try:
            output, timings = await future
        except Exception as exc:  # noqa: BLE001 - every failure is reported on its frame
            return self._failure(request, exc)
        return self._result(request.frame_id, model, output, out_format, timings, received)

    async def process(self, request: pb.FrameRequest, received: float, budget_s: float | None) -> pb.FrameResult:
        """One frame to its result, loading its model first if needed; never raises."""
        try:
            await self.registry.get(request.model)
        except Exception as exc:  # noqa: BLE001 - every failure is reported on its frame
            self.metrics.requests.labels(request.model).inc()
            return self._failure(request, exc)
        return await self.begin(request, received, budget_s)

    def begin(self, request: pb.FrameRequest, received: float, budget_s: float | None) -> Awaitable[pb.FrameResult]:
        """Queue a frame now, in arrival order; the awaitable finishes it.

        With its model loaded the frame is submitted here and the caller awaits a plain
        coroutine (no task, no extra trip through the event loop); only a frame whose
        model must be loaded first gets a task of its own.
        """
        model = self.registry.peek(request.model)
        if model is None:
            return asyncio.ensure_future(self.process(request, received, budget_s))
        self.metrics.requests.labels(request.model).inc()
        try:
            future, out_format = self._submit(model, request, received, budget_s)
        except Exception as exc:  # noqa: BLE001 - every failure is reported on its frame
            done = asyncio.get_running_loop().create_future()
            done.set_result(self._failure(request, exc))
            return done
        return self._complete(request, model, future, out_format, received)

    def _result(self, frame_id: int, model: LoadedModel, output: Any, out_format: int,
                timings: BatchTimings, received: float) -> pb.FrameResult:
        total = time.perf_counter() - received
        model_id = model.spec.id
        self.metrics.latency.labels(model_id).observe(total)
        self.metrics.queue_time.labels(model_id).observe(timings.queue_us / 1e6)
        result = pb.FrameResult(
            frame_id=frame_id,
            timings=pb.Timings(queue_us=timings.queue_us, compute_us=timings.compute_us,
                               batch_size=timings.batch_size, total_us=int(total * 1e6)),
        )
        if out_format != pb.IMAGE_FORMAT_UNSPECIFIED:
            result.mouth = output
            result.mouth_format = out_format
        else:
            result.raw.outputs.extend(output)
        return result

    # -- RPCs ---------------------------------------------------------------
    async def StreamInfer(self, request_iterator: AsyncIterator[pb.FrameRequest],
                          context: grpc.aio.ServicerContext) -> AsyncIterator[pb.FrameResult]:
        pending: asyncio.Queue[Awaitable[pb.FrameResult] | None] = asyncio.Queue(STREAM_INFLIGHT)
        budget = context.time_remaining()

        async def read() -> None:
            try:
                async for request in request_iterator:
                    await pending.put(self.begin(request, time.perf_counter(), budget))
            finally:
                await pending.put(None)

        reader = asyncio.create_task(read())
        self._callers += 1
        try:
            while (result := await pending.get()) is not None:
                yield await result
            await reader  # surfaces a broken request stream
        finally:
            self._callers -= 1
            reader.cancel()
            while not pending.empty():
                _discard(pending.get_nowait())

    async def Infer(self, request: pb.InferRequest, context: grpc.aio.ServicerContext) -> pb.InferResponse:
        received = time.perf_counter()
        budget = context.time_remaining()
        self._callers += 1
        try:
            results = await asyncio.gather(*(self.process(frame, received, budget) for frame in request.frames))
        finally:
            self._callers -= 1
        for result in results:
            if result.HasField("error"):
                await context.abort(_STATUS_BY_CODE[result.error.code],
                                    f"frame {result.frame_id}: {result.error.message}")
        return pb.InferResponse(results=results)

    async def LoadModel(self, request: pb.LoadModelRequest, context: grpc.aio.ServicerContext) -> pb.ModelInfo:
        try:
            model = await self.registry.get(request.model)
        except Exception as exc:  # noqa: BLE001
            error = _as_frame_error(exc)
            await context.abort(error.code, str(error))
        return self._model_info(model.spec.id)

    async def UnloadModel(self, request: pb.UnloadModelRequest,
                          context: grpc.aio.ServicerContext) -> pb.UnloadModelResponse:
        try:
            was_loaded = await self.registry.unload(request.model)
        except UnknownModelError as exc:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        return pb.UnloadModelResponse(was_loaded=was_loaded)

    async def ListModels(self, request: pb.ListModelsRequest,
                         context: grpc.aio.ServicerContext) -> pb.ListModelsResponse:
        return pb.ListModelsResponse(models=[self._model_info(model_id) for model_id in self.registry.specs])

    async def GetServerInfo(self, request: pb.GetServerInfoRequest,
                            context: grpc.aio.ServicerContext) -> pb.ServerInfo:
        return self.server_info()

    # -- introspection ------------------------------------------------------
    def _model_info(self, model_id: str) -> pb.ModelInfo:
        spec = self.registry.spec(model_id)
        layout = pb.ModelLayout(
            crop_size=spec.crop_size, channel_order=spec.channel_order, mask=list(spec.mask),
            masked_first=spec.masked_first, audio_shape=list(spec.audio_shape), image_input=spec.image_input,
            audio_input=spec.audio_input, output=spec.output, lookahead_frames=spec.lookahead_frames,
        )
        info = pb.ModelInfo(id=spec.id, source=spec.source, layout=layout)
        model = next((m for m in self.registry.loaded() if m.spec.id == model_id), None)
        if model is not None:
            info.loaded = True
            info.provider = model.shared.provider.in_use[0]
            info.memory_bytes = model.shared.memory_bytes
            info.shares_session_with.extend(sorted(model.shared.users - {model_id}))
        return info

    def server_info(self) -> pb.ServerInfo:
        loaded = self.registry.loaded()
        in_use: list[str] = []
        reasons: list[str] = []
        for model in loaded:
            provider = model.shared.provider
            if provider.in_use[0] not in in_use:
                in_use.append(provider.in_use[0])
            if provider.fallback_reason and provider.fallback_reason not in reasons:
                reasons.append(provider.fallback_reason)
        devices = [f"cuda:{self.config.runtime.device_id}"] if any(p != CPU for p in in_use) else []
        if CPU in in_use or not in_use:
            devices.append(f"cpu:{platform.machine()}")
        batching, limits = self.config.batching, self.config.registry
        return pb.ServerInfo(
            version=lipstream.__version__,
            providers_requested=self.registry.requested_providers,
            providers_in_use=in_use,
            provider_fallback_reason="; ".join(reasons),
            devices=devices,
            loaded_models=[self._model_info(model.spec.id) for model in loaded],
            capacity=pb.Capacity(
                max_batch=batching.max_batch, max_queue_delay_us=batching.max_queue_delay_us,
                workers=batching.workers, queue_size=batching.queue_size, max_models=limits.max_models,
                max_memory_bytes=int(limits.max_memory_mb * 1024 * 1024),
                max_message_bytes=int(self.config.server.max_message_mb * 1024 * 1024),
            ),
        )

    async def close(self) -> None:
        for _, batcher in self._batchers.values():
            await batcher.close()
        self._batchers.clear()
        await asyncio.gather(*self._retired, return_exceptions=True)
        self._executor.shutdown(wait=True, cancel_futures=True)
        self._loader.shutdown(wait=True, cancel_futures=True)


def _discard(awaitable: Awaitable | None) -> None:
    """A result nobody will send: cancel its task, or close its never-started coroutine."""
    if asyncio.iscoroutine(awaitable):
        awaitable.close()
    elif isinstance(awaitable, asyncio.Future):
        awaitable.cancel()
