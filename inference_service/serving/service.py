"""The lipsync.v1 servicer: validation, the shared frame path, results in request order, errors as status codes."""

from __future__ import annotations

import asyncio
import hmac
import platform
import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import aclosing
from typing import Any, NamedTuple

import grpc

import lipstream
from inference_service.config import InferenceConfig
from inference_service.metrics import InferenceMetrics
from inference_service.runtime.backends import GPU_IN_USE
from inference_service.runtime.batcher import Completed
from inference_service.runtime.engine import InferenceEngine
from inference_service.runtime.layout import LayoutError, validate_compact
from inference_service.runtime.raw import decode_raw
from inference_service.runtime.registry import LoadedModel, ModelRegistry
from inference_service.serving.status import STATUS_BY_NUMBER, status_of
from inference_service.serving.streams import in_order
from protos.lipsync.v1 import lipsync_pb2 as pb
from protos.lipsync.v1 import lipsync_pb2_grpc as pb_grpc

# A compact frame's output is its mouth crop; a raw frame's, its output tensors.
Output = bytes | list[pb.Tensor]


class Submitted(NamedTuple):
    """A frame on its way through a batcher, and the image format its result goes back in."""

    future: asyncio.Future[Completed[Any]]
    output_format: pb.ImageFormat


class LipSyncService(pb_grpc.LipSyncServicer):
    def __init__(
        self, config: InferenceConfig, metrics: InferenceMetrics, registry: ModelRegistry | None = None
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.engine = InferenceEngine(config, metrics, registry)
        self.registry = self.engine.registry

    # -- frame path -------------------------------------------------------
    def _failure(self, request: pb.FrameRequest, exc: BaseException) -> pb.FrameResult:
        code, message = status_of(exc)
        self.metrics.failures.labels(request.model, code.name).inc()
        return pb.FrameResult(frame_id=request.frame_id, error=pb.Error(code=code.value[0], message=message))

    def _submit(
        self, model: LoadedModel, request: pb.FrameRequest, received: float, budget_s: float | None
    ) -> Submitted:
        """Validate and queue one frame; returns the batcher's future and the output format."""
        if request.budget_us:
            frame_budget = request.budget_us / 1e6
            budget_s = min(budget_s, frame_budget) if budget_s else frame_budget
        kind = request.WhichOneof("input")
        if kind == "compact":
            frame = validate_compact(model.spec, request.compact)
            return Submitted(self.engine.submit_compact(model, frame, received, budget_s), frame.output_format)
        if kind == "raw":
            tensors = decode_raw(request.raw.inputs, model.shared.inputs)
            raw = self.engine.submit_raw(model, tensors, received, budget_s)
            return Submitted(raw, pb.IMAGE_FORMAT_UNSPECIFIED)
        raise LayoutError("input: the frame carries neither a compact nor a raw input")

    async def _complete(
        self,
        request: pb.FrameRequest,
        model: LoadedModel,
        future: asyncio.Future[Completed[Output]],
        out_format: pb.ImageFormat,
        received: float,
    ) -> pb.FrameResult:
        try:
            done = await future
        except Exception as exc:  # noqa: BLE001 - every failure is reported on its frame
            return self._failure(request, exc)
        return self._result(request.frame_id, model, done, out_format, received)

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
            submitted = self._submit(model, request, received, budget_s)
        except Exception as exc:  # noqa: BLE001 - every failure is reported on its frame
            failed: asyncio.Future[pb.FrameResult] = asyncio.get_running_loop().create_future()
            failed.set_result(self._failure(request, exc))
            return failed
        return self._complete(request, model, submitted.future, submitted.output_format, received)

    def _result(
        self,
        frame_id: int,
        model: LoadedModel,
        done: Completed[Output],
        out_format: pb.ImageFormat,
        received: float,
    ) -> pb.FrameResult:
        total = self.engine.completed(model.spec.id, done.timings, received)
        timings = done.timings
        result = pb.FrameResult(
            frame_id=frame_id,
            timings=pb.Timings(
                queue_us=timings.queue_us,
                compute_us=timings.compute_us,
                batch_size=timings.batch_size,
                total_us=int(total * 1e6),
            ),
        )
        if isinstance(done.result, bytes):
            result.mouth = done.result
            result.mouth_format = out_format
        else:
            result.raw.outputs.extend(done.result)
        return result

    # -- RPCs ---------------------------------------------------------------
    async def StreamInfer(
        self, request_iterator: AsyncIterator[pb.FrameRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.FrameResult]:
        budget = context.time_remaining()
        results = in_order(request_iterator, lambda request, received: self.begin(request, received, budget))
        with self.engine.caller():
            async with aclosing(results):  # its reader ends with the call, however the call ends
                async for started in results:
                    yield await started.result

    async def Infer(self, request: pb.InferRequest, context: grpc.aio.ServicerContext) -> pb.InferResponse:
        received = time.perf_counter()
        budget = context.time_remaining()
        with self.engine.caller():
            results = await asyncio.gather(*(self.process(frame, received, budget) for frame in request.frames))
        for result in results:
            if result.HasField("error"):
                await context.abort(
                    STATUS_BY_NUMBER[result.error.code], f"frame {result.frame_id}: {result.error.message}"
                )
        return pb.InferResponse(results=results)

    async def _authorise_admin(self, context: grpc.aio.ServicerContext) -> None:
        """Loading and unloading models changes what every client gets: only with the admin token."""
        token = self.config.server.admin_token
        if token is None:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "model administration is off (server.admin_token)")
        presented = dict(context.invocation_metadata() or ()).get("authorization", "")
        if not hmac.compare_digest(str(presented).encode(), f"Bearer {token}".encode()):
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "model administration needs the admin token")

    async def LoadModel(self, request: pb.LoadModelRequest, context: grpc.aio.ServicerContext) -> pb.ModelInfo:
        await self._authorise_admin(context)
        try:
            model = await self.registry.get(request.model)
        except Exception as exc:  # noqa: BLE001 - every failure has its status
            await context.abort(*status_of(exc))
        return self._model_info(model.spec.id)

    async def UnloadModel(
        self, request: pb.UnloadModelRequest, context: grpc.aio.ServicerContext
    ) -> pb.UnloadModelResponse:
        await self._authorise_admin(context)
        try:
            was_loaded = await self.registry.unload(request.model)
        except Exception as exc:  # noqa: BLE001 - every failure has its status
            await context.abort(*status_of(exc))
        return pb.UnloadModelResponse(was_loaded=was_loaded)

    async def ListModels(
        self, request: pb.ListModelsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListModelsResponse:
        return pb.ListModelsResponse(models=[self._model_info(model_id) for model_id in self.registry.specs])

    async def GetServerInfo(self, request: pb.GetServerInfoRequest, context: grpc.aio.ServicerContext) -> pb.ServerInfo:
        return self.server_info()

    # -- introspection ------------------------------------------------------
    def _model_info(self, model_id: str) -> pb.ModelInfo:
        spec = self.registry.spec(model_id)
        layout = pb.ModelLayout(
            crop_size=spec.crop_size,
            channel_order=spec.channel_order,
            mask=list(spec.mask),
            masked_first=spec.masked_first,
            audio_shape=list(spec.audio_shape),
            image_input=spec.image_input,
            audio_input=spec.audio_input,
            output=spec.output,
            lookahead_frames=spec.lookahead_frames,
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
        devices = [f"cuda:{self.config.runtime.device_id}"] if any(p in GPU_IN_USE for p in in_use) else []
        if any(p not in GPU_IN_USE for p in in_use) or not in_use:
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
                max_batch=batching.max_batch,
                max_queue_delay_us=batching.max_queue_delay_us,
                workers=batching.workers,
                queue_size=batching.queue_size,
                max_models=limits.max_models,
                max_memory_bytes=int(limits.max_memory_mb * 1024 * 1024),
                max_message_bytes=int(self.config.server.max_message_mb * 1024 * 1024),
            ),
        )

    async def close(self) -> None:
        await self.engine.close()
