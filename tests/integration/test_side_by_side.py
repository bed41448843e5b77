"""lipstream installed beside tritonclient: one protobuf runtime loads both generated codes, and
`lipstream inference` starts and answers a tritonclient and a lipsync.v1 client alike."""

from __future__ import annotations

import asyncio

import grpc
import tritonclient.grpc as triton
from inference_helpers import start_inference_process
from tritonclient.grpc import service_pb2

from inference_service.client import wait_until_serving
from lipstream.lifecycle import free_port
from protos.lipsync.v1 import lipsync_pb2 as pb
from protos.lipsync.v1 import lipsync_pb2_grpc as pb_grpc


async def test_lipstream_inference_starts_beside_tritonclient_and_answers_both() -> None:
    assert service_pb2.DESCRIPTOR.package == "inference" and pb.DESCRIPTOR.package == "lipsync.v1"
    port = free_port()
    inference = start_inference_process(port)
    try:
        await wait_until_serving(f"127.0.0.1:{port}", 120)

        def kserve_calls() -> tuple[bool, list[str]]:
            with triton.InferenceServerClient(f"127.0.0.1:{port}") as client:
                metadata = client.get_model_metadata("parametric-mouth-compact")
                return client.is_server_ready(), [tensor.name for tensor in metadata.inputs]

        ready, inputs = await asyncio.to_thread(kserve_calls)
        assert ready and inputs == ["crop", "audio"]
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            info = await pb_grpc.LipSyncStub(channel).GetServerInfo(pb.GetServerInfoRequest(), timeout=10)
        assert [model.id for model in info.loaded_models] == ["parametric-mouth"]
    finally:
        inference.terminate()
        assert inference.wait(timeout=30) == 0, "lipstream inference must stop cleanly"
