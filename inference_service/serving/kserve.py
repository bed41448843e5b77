"""The KServe v2 servicer (`inference.GRPCInferenceService`, with Triton's `ModelStreamInfer` and `ModelConfig`).

It serves beside lipsync.v1 on the same port and sends frames down the same `InferenceEngine`
(same registry, same batchers), so frames of both protocols share model runs. Model names are
read as `kserve_models` says; the generated code is tritonclient's (`protos.kserve` says why).
Errors take their codes from `status.status_of`, the one table: unknown model NOT_FOUND, a bad
tensor INVALID_ARGUMENT naming it, a full queue RESOURCE_EXHAUSTED. On a stream a failed request
is answered in its turn with `error_message` and the stream goes on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from typing import Any, TypeAlias

import grpc

import lipstream
from inference_service.runtime.batcher import Completed
from inference_service.runtime.engine import InferenceEngine
from inference_service.runtime.layout import I420, CompactFrame
from inference_service.runtime.raw import TensorBytes, decode_raw
from inference_service.runtime.registry import LoadedModel
from inference_service.serving import kserve_models
from inference_service.serving.kserve_models import Served
from inference_service.serving.kserve_tensors import Tensor, fill_response, request_inputs
from inference_service.serving.status import Status, status_of
from inference_service.serving.streams import failed, in_order
from protos import kserve
from protos.kserve import service_pb2, service_pb2_grpc
from protos.lipsync.v1 import lipsync_pb2 as pb

Response: TypeAlias = service_pb2.ModelInferResponse
StreamResponse: TypeAlias = service_pb2.ModelStreamInferResponse


class KServeService(service_pb2_grpc.GRPCInferenceServiceServicer):
    def __init__(self, engine: InferenceEngine, ready: Callable[[], bool]) -> None:
        self.engine = engine
        self.registry = engine.registry
        self.metrics = engine.metrics
        self._ready = ready

    # -- health and metadata --------------------------------------------------------------
    async def ServerLive(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return service_pb2.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return service_pb2.ServerReadyResponse(ready=self._ready())

    async def ServerMetadata(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return service_pb2.ServerMetadataResponse(
            name="lipstream", version=lipstream.__version__, extensions=["model_configuration"]
        )

    async def ModelReady(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        """Ready: known and loaded now (a known model not loaded yet loads on its first request)."""
        try:
            served = kserve_models.resolve(self.registry.specs, request.name, request.version)
        except LookupError:
            return service_pb2.ModelReadyResponse(ready=False)
        return service_pb2.ModelReadyResponse(ready=self.registry.peek(served.spec.id) is not None)

    async def _loaded(self, name: str, version: str, context: grpc.aio.ServicerContext) -> tuple[Served, LoadedModel]:
        """The model behind a name, loaded (its tensors come from its session); aborts the call if it cannot be."""
        try:
            served = kserve_models.resolve(self.registry.specs, name, version)
            return served, await self.registry.get(served.spec.id)
        except Exception as exc:  # noqa: BLE001 - every failure has its status
            await context.abort(*status_of(exc))
            raise  # abort raises; this line only tells the type checker

    async def ModelMetadata(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        served, model = await self._loaded(request.name, request.version, context)
        return kserve_models.metadata(served, model)

    async def ModelConfig(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        served, model = await self._loaded(request.name, request.version, context)
        batching = self.engine.config.batching
        config = kserve_models.config(served, model, batching.max_batch, batching.max_queue_delay_us)
        return service_pb2.ModelConfigResponse(config=config)

    # -- inference ------------------------------------------------------------------------
    async def ModelInfer(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        with self.engine.caller():
            try:
                return await self.begin(request, time.perf_counter(), context.time_remaining(), Response())
            except Exception as exc:  # noqa: BLE001 - every failure has its status
                await context.abort(*self._failure(request, exc))

    async def ModelStreamInfer(
        self, request_iterator: AsyncIterator[Any], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Any]:
        budget = context.time_remaining()
        results = in_order(
            request_iterator, lambda request, received: self.begin(request, received, budget, StreamResponse())
        )
        with self.engine.caller():
            async with aclosing(results):  # its reader ends with the call, however the call ends
                async for request, result in results:
                    try:
                        yield await result
                    except Exception as exc:  # noqa: BLE001 - a failed request is answered, the stream goes on
                        code, message = self._failure(request, exc)
                        answer = StreamResponse(error_message=f"{code.name}: {message}")
                        answer.infer_response.model_name = request.model_name
                        answer.infer_response.id = request.id
                        yield answer

    def _failure(self, request: Any, exc: BaseException) -> Status:
        status = status_of(exc)
        self.metrics.failures.labels(request.model_name, status.code.name).inc()
        return status

    def begin(self, request: Any, received: float, budget_s: float | None, into: Any) -> Awaitable[Any]:
        """Queue the request's frames now, in arrival order; the awaitable fills `into` and gives it, or raises.

        `into` is a ModelInferResponse, or a ModelStreamInferResponse whose `infer_response` is filled
        in place (building it apart and nesting it would copy the mouth, and costs more than the rest).
        With its model loaded the frames are submitted here (no task, no extra trip through the
        event loop); only a request whose model must be loaded first gets a task of its own.
        """
        try:
            served = kserve_models.resolve(self.registry.specs, request.model_name, request.model_version)
            self.metrics.requests.labels(served.spec.id).inc()
            timeout = request.parameters.get(kserve.TIMEOUT_PARAM)
            if timeout is not None and timeout.int64_param > 0:
                frame_budget = timeout.int64_param / 1e6
                budget_s = min(budget_s, frame_budget) if budget_s else frame_budget
            model = self.registry.peek(served.spec.id)
            if model is None:
                return asyncio.ensure_future(self._load_and_run(served, request, received, budget_s, into))
            submitted = self._submit(served, model, request, received, budget_s)
        except Exception as exc:  # noqa: BLE001 - answered in the request's turn
            return failed(exc)
        return self._respond(served, model, request, received, submitted, into)

    async def _load_and_run(
        self, served: Served, request: Any, received: float, budget_s: float | None, into: Any
    ) -> Any:
        model = await self.registry.get(served.spec.id)
        submitted = self._submit(served, model, request, received, budget_s)
        return await self._respond(served, model, request, received, submitted, into)

    def _submit(
        self, served: Served, model: LoadedModel, request: Any, received: float, budget_s: float | None
    ) -> list[asyncio.Future[Completed[Any]]]:
        """Validate the inputs and queue the frames: one model-layout batch, or one compact frame per row."""
        tensors = request_inputs(request)
        if not served.compact:
            arrays = decode_raw(tensors, model.shared.inputs, kserve.datatype_name)
            return [self.engine.submit_raw(model, arrays, received, budget_s)]
        arrays = decode_raw(tensors, kserve_models.compact_signatures(served.spec), kserve.datatype_name)
        frames = [
            CompactFrame(crop.tobytes(), I420, audio.tobytes(), I420)
            for crop, audio in zip(arrays[kserve.CROP], arrays[kserve.AUDIO])
        ]
        return [self.engine.submit_compact(model, frame, received, budget_s) for frame in frames]

    async def _respond(
        self,
        served: Served,
        model: LoadedModel,
        request: Any,
        received: float,
        submitted: list[asyncio.Future[Completed[Any]]],
        into: Any,
    ) -> Any:
        done = [await submitted[0]] if len(submitted) == 1 else await asyncio.gather(*submitted)
        response = getattr(into, "infer_response", into)  # a stream answer holds the response it gives
        response.model_name, response.model_version, response.id = served.name, kserve_models.VERSION, request.id
        fill_response(response, self._outputs(served, done), [output.name for output in request.outputs])
        total_s = 0.0
        for completed in done:
            total_s = self.engine.completed(model.spec.id, completed.timings, received)
        timings = done[-1].timings
        values = (timings.queue_us, timings.compute_us, timings.batch_size, int(total_s * 1e6))
        for name, value in zip(kserve.TIMING_PARAMS, values):
            response.parameters[name].int64_param = value
        return into

    def _outputs(self, served: Served, done: list[Completed[Any]]) -> list[TensorBytes]:
        """The model's own output tensors, or the compact variant's I420 mouths as one batch."""
        if not served.compact:
            return list(done[0].result)
        shape = (len(done), *kserve.i420_shape(served.spec.crop_size))
        return [Tensor(kserve.MOUTH, pb.DTYPE_UINT8, shape, b"".join(frame.result for frame in done))]
