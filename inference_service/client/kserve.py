"""KServe v2 as an edge speaks it: session frames on `ModelStreamInfer` to the model's compact variant.

Any KServe v2 server with Triton's streaming extension works: lipstream's own, or NVIDIA Triton
serving a `lipstream models export-triton` repository. A frame goes to `ID-compact` as its I420
crop (UINT8) and float16 audio window, its budget as Triton's `timeout` parameter; the I420 mouth
comes back. Conventions: `protos.kserve`.
"""

from __future__ import annotations

import math
from typing import Any

import grpc

from inference_service.client.wire import Answer
from protos import kserve
from protos.kserve import service_pb2, service_pb2_grpc
from protos.lipsync.v1 import lipsync_pb2 as pb

_STATUS_BY_NAME = {status.name: status for status in grpc.StatusCode}


class KServeWire:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)

    def open(self) -> grpc.aio.StreamStreamCall:
        return self.stub.ModelStreamInfer(wait_for_ready=False)

    def request(self, frame: pb.FrameRequest) -> Any:
        if frame.WhichOneof("input") != "compact":
            raise ValueError("the kserve protocol carries compact frames only")
        crop, audio = frame.compact.crop, frame.compact.audio
        if frame.compact.crop_format not in (pb.IMAGE_FORMAT_UNSPECIFIED, pb.IMAGE_FORMAT_I420):
            raise ValueError("the kserve protocol carries I420 crops only")
        size = math.isqrt(len(crop) * 2 // 3)
        request = service_pb2.ModelInferRequest(model_name=kserve.compact_name(frame.model), id=str(frame.frame_id))
        request.inputs.add(name=kserve.CROP, datatype="UINT8", shape=(1, *kserve.i420_shape(size)))
        request.inputs.add(name=kserve.AUDIO, datatype="FP16", shape=(1, len(audio) // 2))
        request.raw_input_contents.extend((crop, audio))
        if frame.budget_us:
            request.parameters[kserve.TIMEOUT_PARAM].int64_param = frame.budget_us
        return request

    def answer(self, message: Any) -> Answer:
        response = message.infer_response
        frame_id = int(response.id) if response.id.isdigit() else None
        if message.error_message:
            name, _, detail = message.error_message.partition(": ")
            status = _STATUS_BY_NAME.get(name)
            code, text = (status, detail) if status is not None else (grpc.StatusCode.UNKNOWN, message.error_message)
            return Answer(
                frame_id, pb.FrameResult(frame_id=frame_id or 0, error=pb.Error(code=code.value[0], message=text))
            )
        names = [output.name for output in response.outputs]
        if kserve.MOUTH not in names:
            error = pb.Error(code=grpc.StatusCode.INTERNAL.value[0], message=f"no '{kserve.MOUTH}' output in {names}")
            return Answer(frame_id, pb.FrameResult(frame_id=frame_id or 0, error=error))
        parameters = response.parameters
        queue_us, compute_us, batch_size, total_us = (
            parameters[name].int64_param if name in parameters else 0 for name in kserve.TIMING_PARAMS
        )
        timings = pb.Timings(queue_us=queue_us, compute_us=compute_us, batch_size=batch_size, total_us=total_us)
        mouth = response.raw_output_contents[names.index(kserve.MOUTH)]
        return Answer(
            frame_id,
            pb.FrameResult(frame_id=frame_id or 0, mouth=mouth, mouth_format=pb.IMAGE_FORMAT_I420, timings=timings),
        )

    async def ready(self, timeout_s: float) -> bool:
        try:
            reply = await self.stub.ServerReady(
                service_pb2.ServerReadyRequest(), timeout=timeout_s, wait_for_ready=True
            )
        except grpc.aio.AioRpcError:
            return False
        return bool(reply.ready)

    async def lookahead_frames(self, model_id: str, timeout_s: float) -> int | None:
        request = service_pb2.ModelConfigRequest(name=kserve.compact_name(model_id))
        config = (await self.stub.ModelConfig(request, timeout=timeout_s)).config
        if kserve.LOOKAHEAD_PARAM not in config.parameters:
            return None
        return int(config.parameters[kserve.LOOKAHEAD_PARAM].string_value)
