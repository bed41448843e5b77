"""The edge's KServe wire against a server that answers as Triton may: out of order, errors without an id."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from inference_helpers import TINY, compact_frame

from inference_service.client import FrameFailed, InferenceClient
from protos import kserve
from protos.kserve import model_config_pb2, service_pb2, service_pb2_grpc


class TritonLike(service_pb2_grpc.GRPCInferenceServiceServicer):
    """Echoes each crop as the mouth, answering every pair of requests in reverse order; a request for
    `bad-compact` gets a bare `error_message` (no status name, no id), as Triton words its errors."""

    async def ServerReady(self, request, context):  # noqa: N802 - gRPC's name
        return service_pb2.ServerReadyResponse(ready=True)

    async def ModelConfig(self, request, context):  # noqa: N802 - gRPC's name
        return service_pb2.ModelConfigResponse(config=model_config_pb2.ModelConfig(name=request.name))

    async def ModelStreamInfer(self, request_iterator, context):  # noqa: N802 - gRPC's name
        held = None
        async for request in request_iterator:
            if request.model_name == "bad-compact":
                yield service_pb2.ModelStreamInferResponse(error_message="in ensemble 'bad-compact', unexpected shape")
                continue
            response = service_pb2.ModelInferResponse(model_name=request.model_name, id=request.id)
            response.outputs.add(name=kserve.MOUTH, datatype="UINT8", shape=request.inputs[0].shape)
            response.raw_output_contents.append(request.raw_input_contents[0])
            if held is None:
                held = response
                continue
            for answer in (response, held):
                yield service_pb2.ModelStreamInferResponse(infer_response=answer)
            held = None


@pytest.fixture
async def triton_like():
    server = grpc.aio.server()
    service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(TritonLike(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}"
    await server.stop(0)


async def test_answers_are_matched_to_their_frames_whatever_their_order(triton_like: str) -> None:
    async with InferenceClient([triton_like], protocol="kserve") as client:
        assert await client.reachable(timeout_s=5)
        assert await client.lookahead_frames("one") is None, "a model config without lipstream's parameter says nothing"
        stream = client.open_stream()
        try:
            frames = [compact_frame(frame_id, "one", TINY, (2, 4)) for frame_id in range(6)]
            results = await asyncio.wait_for(asyncio.gather(*(stream.submit(frame) for frame in frames)), 10)
            assert [r.frame_id for r in results] == list(range(6))
            assert [r.mouth for r in results] == [f.compact.crop for f in frames]
            with pytest.raises(FrameFailed) as failed:
                await asyncio.wait_for(stream.submit(compact_frame(9, "bad", TINY, (2, 4))), 10)
            assert failed.value.code == grpc.StatusCode.UNKNOWN.value[0]
            assert "unexpected shape" in str(failed.value)
        finally:
            await stream.close()
