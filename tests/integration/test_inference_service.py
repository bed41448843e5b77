"""The inference service on a real gRPC port: RPCs, batching, ordering, registry, bad input."""

from __future__ import annotations

import asyncio
import ipaddress
from pathlib import Path

import grpc
import numpy as np
import psutil
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from inference_helpers import (
    ADMIN,
    TINY,
    audio_bytes,
    compact_frame,
    i420_crop,
    make_config,
    tiny_spec,
    write_tiny_model,
)

from inference_service.config import InferenceConfig
from inference_service.serving.server import InferenceServer
from protos.lipsync.v1 import lipsync_pb2 as pb
from protos.lipsync.v1 import lipsync_pb2_grpc as pb_grpc

AUDIO = (2, 4)


@pytest.fixture
def tiny_models(tmp_path: Path) -> dict[str, Path]:
    return {
        "one": write_tiny_model(tmp_path / "one.onnx", gain=1.0),
        "half": write_tiny_model(tmp_path / "half.onnx", gain=0.5),
        "big": write_tiny_model(tmp_path / "big.onnx", padding_bytes=3 * 1024 * 1024),
        "broken": (tmp_path / "broken.onnx"),
    }


def tiny_config(models: dict[str, Path], **sections: dict):
    models["broken"].write_bytes(b"this is not an onnx file")
    rgb = tiny_spec("one-rgb", models["one"]).model_copy(update={"channel_order": "RGB"})
    specs = [
        tiny_spec("one", models["one"]),
        tiny_spec("one-alias", models["one"]),
        rgb,
        tiny_spec("half", models["half"]),
        tiny_spec("big", models["big"]),
        tiny_spec("broken", models["broken"]),
    ]
    return make_config(specs, **sections)


async def running(config) -> tuple[InferenceServer, grpc.aio.Channel, pb_grpc.LipSyncStub]:
    server = InferenceServer(config)
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    return server, channel, pb_grpc.LipSyncStub(channel)


@pytest.fixture
async def tiny_server(tiny_models):
    server, channel, stub = await running(tiny_config(tiny_models, batching={"max_queue_delay_us": 20000}))
    yield server, stub
    await channel.close()
    await server.stop()


def tiny_frame(frame_id: int, model: str = "one", **kwargs) -> pb.FrameRequest:
    return compact_frame(frame_id, model, TINY, AUDIO, **kwargs)


def expected_tiny(crop: bytes, gain: float, level: float) -> np.ndarray:
    import cv2

    bgr = cv2.cvtColor(np.frombuffer(crop, np.uint8).reshape(TINY * 3 // 2, TINY), cv2.COLOR_YUV2BGR_I420)
    out = np.clip(bgr / 255.0 * gain + level, 0, 1)
    return (out * 255 + 0.5).astype(np.uint8)


async def test_health_and_reflection(tiny_server) -> None:
    server, _ = tiny_server
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "lipsync.v1.LipSync"):
            reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        call = stub.ServerReflectionInfo()
        await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
        reply = await call.read()
        await call.done_writing()
        names = {service.name for service in reply.list_services_response.service}
        assert {"lipsync.v1.LipSync", "grpc.health.v1.Health"} <= names


async def test_infer_returns_model_output_in_requested_format(tiny_server) -> None:
    _, stub = tiny_server
    crop = i420_crop(TINY, seed=3)
    request = pb.InferRequest(
        frames=[
            tiny_frame(1, crop=crop, audio=audio_bytes(AUDIO, 0.0)),
            pb.FrameRequest(
                frame_id=2,
                model="half",
                compact=pb.CompactInput(
                    crop=crop,
                    crop_format=pb.IMAGE_FORMAT_I420,
                    audio=audio_bytes(AUDIO, 0.25),
                    output_format=pb.IMAGE_FORMAT_BGR24,
                ),
            ),
        ]
    )
    reply = await stub.Infer(request, timeout=10)
    first, second = reply.results
    assert (first.frame_id, second.frame_id) == (1, 2)
    assert first.mouth_format == pb.IMAGE_FORMAT_I420 and len(first.mouth) == TINY * TINY * 3 // 2
    # I420 -> BGR -> model -> BGR -> I420 with an identity model is lossless up to chroma rounding.
    diff = np.abs(np.frombuffer(first.mouth, np.uint8).astype(int) - np.frombuffer(crop, np.uint8))
    assert diff[: TINY * TINY].max() <= 3
    assert second.mouth_format == pb.IMAGE_FORMAT_BGR24
    got = np.frombuffer(second.mouth, np.uint8).reshape(TINY, TINY, 3)
    assert np.abs(got.astype(int) - expected_tiny(crop, 0.5, 0.25)).max() <= 1
    assert second.timings.compute_us > 0 and second.timings.batch_size >= 1


async def test_rgb_model_round_trips_colours(tiny_server) -> None:
    _, stub = tiny_server
    bgr = np.zeros((TINY, TINY, 3), np.uint8)
    bgr[..., 0] = 200  # blue
    frame = pb.FrameRequest(
        frame_id=1,
        model="one-rgb",
        compact=pb.CompactInput(crop=bgr.tobytes(), crop_format=pb.IMAGE_FORMAT_BGR24, audio=audio_bytes(AUDIO)),
    )
    reply = await stub.Infer(pb.InferRequest(frames=[frame]), timeout=5)
    got = np.frombuffer(reply.results[0].mouth, np.uint8).reshape(TINY, TINY, 3)
    assert np.abs(got.astype(int) - bgr).max() <= 1, "an identity RGB model must round-trip the colours"


async def test_stream_keeps_order_and_batches_across_streams(tiny_server) -> None:
    server, stub = tiny_server

    async def one_stream(offset: int) -> list[pb.FrameResult]:
        call = stub.StreamInfer()
        ids = [offset + i for i in range(24)]
        for frame_id in ids:
            await call.write(tiny_frame(frame_id, model="one" if frame_id % 2 else "one-alias"))
        await call.done_writing()
        results = [result async for result in call]
        assert [r.frame_id for r in results] == ids
        return results

    streams = await asyncio.gather(*(one_stream(1000 * s) for s in range(6)))
    batch_sizes = [r.timings.batch_size for results in streams for r in results]
    assert all(not r.HasField("error") for results in streams for r in results)
    assert max(batch_sizes) > 1, "frames from concurrent streams were never batched"
    metrics = server.metrics.registry.get_sample_value("lipstream_inference_batch_size_count", {"model": "one"})
    assert metrics and metrics > 0


async def test_bad_frames_get_clear_errors_and_do_not_harm_the_stream(tiny_server) -> None:
    _, stub = tiny_server
    call = stub.StreamInfer()
    bad_raw = pb.FrameRequest(
        frame_id=4,
        model="one",
        raw=pb.RawInput(
            inputs=[
                pb.Tensor(name="input", dtype=pb.DTYPE_FLOAT32, shape=[1, 6, 8, 8], data=bytes(6 * 64 * 4)),
                pb.Tensor(name="audio", dtype=pb.DTYPE_FLOAT32, shape=[1, 2, 4], data=bytes(32)),
            ]
        ),
    )
    bad_dtype = pb.FrameRequest(
        frame_id=7,
        model="one",
        raw=pb.RawInput(
            inputs=[
                pb.Tensor(
                    name="input", dtype=pb.DTYPE_FLOAT32, shape=[1, 6, TINY, TINY], data=bytes(6 * TINY * TINY * 4)
                ),
                pb.Tensor(name="audio", dtype=pb.DTYPE_UINT8, shape=[1, 2, 4], data=bytes(8)),
            ]
        ),
    )
    frames = [
        bad_dtype,
        tiny_frame(1),
        tiny_frame(2, crop=b"\x00" * 10),
        tiny_frame(3, audio=b"\x00" * 6),
        bad_raw,
        tiny_frame(5, model="no-such-model"),
        tiny_frame(6),
    ]
    for frame in frames:
        await call.write(frame)
    await call.done_writing()
    results = {r.frame_id: r async for r in call}
    assert not results[1].HasField("error") and not results[6].HasField("error")
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    expectations = {
        2: (invalid, "crop"),
        3: (invalid, "audio"),
        4: (invalid, "input: shape"),
        5: (grpc.StatusCode.NOT_FOUND, "no-such-model"),
        7: (invalid, "audio: dtype DTYPE_UINT8"),
    }
    for frame_id, (code, words) in expectations.items():
        error = results[frame_id].error
        assert error.code == code.value[0], (frame_id, error)
        assert words in error.message


async def test_unary_errors_are_status_codes(tiny_server) -> None:
    _, stub = tiny_server
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await stub.Infer(pb.InferRequest(frames=[tiny_frame(1, crop=b"\x01" * 3)]), timeout=5)
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "crop" in bad.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await stub.Infer(pb.InferRequest(frames=[tiny_frame(1, model="nope")]), timeout=5)
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


async def test_raw_mode_passes_named_tensors(tiny_server) -> None:
    _, stub = tiny_server
    image = np.full((2, 6, TINY, TINY), 0.25, np.float32)
    audio = np.full((2, 2, 4), 0.5, np.float32)
    frame = pb.FrameRequest(
        frame_id=9,
        model="one",
        raw=pb.RawInput(
            inputs=[
                pb.Tensor(name="input", dtype=pb.DTYPE_FLOAT32, shape=list(image.shape), data=image.tobytes()),
                pb.Tensor(name="audio", dtype=pb.DTYPE_FLOAT32, shape=list(audio.shape), data=audio.tobytes()),
            ]
        ),
    )
    reply = await stub.Infer(pb.InferRequest(frames=[frame]), timeout=5)
    (tensor,) = reply.results[0].raw.outputs
    assert tensor.name == "output" and list(tensor.shape) == [2, 3, TINY, TINY]
    np.testing.assert_allclose(np.frombuffer(tensor.data, np.float32), 0.75)


async def test_registry_lru_shared_sessions_and_load_failure(tiny_models) -> None:
    config = tiny_config(tiny_models, registry={"max_models": 2, "max_memory_mb": 2.5})
    server, channel, stub = await running(config)
    try:
        await stub.LoadModel(pb.LoadModelRequest(model="one"), metadata=ADMIN)
        alias = await stub.LoadModel(pb.LoadModelRequest(model="one-alias"), metadata=ADMIN)
        assert alias.shares_session_with == ["one"]
        assert 0 < server.service.registry.memory_bytes() < 10_000  # one shared file, counted once
        await stub.Infer(pb.InferRequest(frames=[tiny_frame(1, model="one")]))  # "one" is now most recent
        await stub.LoadModel(pb.LoadModelRequest(model="half"), metadata=ADMIN)  # over max_models: evicts "one-alias"
        loaded = {m.id for m in (await stub.ListModels(pb.ListModelsRequest())).models if m.loaded}
        assert loaded == {"one", "half"}
        await stub.LoadModel(pb.LoadModelRequest(model="big"), metadata=ADMIN)  # 3 MB > 2.5 MB budget: evicts the rest
        loaded = {m.id for m in (await stub.ListModels(pb.ListModelsRequest())).models if m.loaded}
        assert loaded == {"big"}
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await stub.LoadModel(pb.LoadModelRequest(model="broken"), metadata=ADMIN)
        assert failed.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "broken" in failed.value.details()
        reply = await stub.Infer(pb.InferRequest(frames=[tiny_frame(2, model="half")]), timeout=5)
        assert reply.results[0].mouth, "a model that failed to load must leave the others serving"
        unloaded = await stub.UnloadModel(pb.UnloadModelRequest(model="half"), metadata=ADMIN)
        assert unloaded.was_loaded
    finally:
        await channel.close()
        await server.stop()


async def test_full_queue_answers_resource_exhausted(tiny_models) -> None:
    config = tiny_config(tiny_models, batching={"queue_size": 1, "max_batch": 1, "workers": 1})
    server, channel, stub = await running(config)
    try:
        await stub.LoadModel(pb.LoadModelRequest(model="one"), metadata=ADMIN)
        call = stub.StreamInfer()
        for frame_id in range(40):
            await call.write(tiny_frame(frame_id))
        await call.done_writing()
        codes = [r.error.code for r in [r async for r in call]]
        assert grpc.StatusCode.RESOURCE_EXHAUSTED.value[0] in codes
        assert codes.count(0) >= 1, "frames that fit the queue must still be served"
    finally:
        await channel.close()
        await server.stop()


async def test_deadlines_and_message_limits(tiny_models) -> None:
    config = tiny_config(tiny_models, server={"max_message_mb": 0.01})
    server, channel, stub = await running(config)
    try:
        call = stub.StreamInfer()
        await call.write(tiny_frame(1, budget_us=1))  # cannot be met: skipped, not computed
        await call.write(tiny_frame(2))
        await call.done_writing()
        results = [r async for r in call]
        assert results[0].error.code == grpc.StatusCode.DEADLINE_EXCEEDED.value[0]
        assert not results[1].HasField("error")
        with pytest.raises(grpc.aio.AioRpcError) as too_big:
            await stub.Infer(pb.InferRequest(frames=[tiny_frame(i) for i in range(40)]), timeout=5)
        assert too_big.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        await channel.close()
        await server.stop()


async def test_call_deadline_skips_frames_still_queued(tiny_models) -> None:
    server, channel, stub = await running(tiny_config(tiny_models, batching={"max_batch": 1}))
    try:
        await stub.LoadModel(pb.LoadModelRequest(model="one"), metadata=ADMIN)
        with pytest.raises(grpc.aio.AioRpcError) as late:
            await stub.Infer(pb.InferRequest(frames=[tiny_frame(i) for i in range(300)]), timeout=0.005)
        assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        await asyncio.sleep(0.5)  # let the server drain what it had queued
        computed = server.metrics.registry.get_sample_value("lipstream_inference_batch_size_sum", {"model": "one"}) or 0
        assert computed < 300, "frames of a call past its deadline must be skipped, not computed"
    finally:
        await channel.close()
        await server.stop()


async def test_server_info_and_metrics_endpoint(tiny_server) -> None:
    import urllib.request

    server, stub = tiny_server
    await stub.Infer(pb.InferRequest(frames=[tiny_frame(1)]))
    info = await stub.GetServerInfo(pb.GetServerInfoRequest())
    assert info.providers_in_use == ["CPUExecutionProvider"]
    assert info.capacity.max_batch == 8 and [m.id for m in info.loaded_models] == ["one"]
    body = await asyncio.to_thread(
        lambda: urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics").read().decode()
    )
    assert 'lipstream_inference_frames_total{model="one"} 1.0' in body
    assert 'lipstream_inference_provider{model="one",provider="CPUExecutionProvider"} 1.0' in body
    assert "lipstream_inference_latency_seconds_bucket" in body


async def test_evicting_the_other_user_of_a_file_keeps_its_shared_session(tiny_models) -> None:
    server, channel, stub = await running(tiny_config(tiny_models, registry={"max_models": 2}))
    try:
        await stub.LoadModel(pb.LoadModelRequest(model="one"), metadata=ADMIN)
        await stub.LoadModel(pb.LoadModelRequest(model="half"), metadata=ADMIN)
        await stub.LoadModel(
            pb.LoadModelRequest(model="one-alias"), metadata=ADMIN
        )  # evicts "one", the other user of its file
        registry = server.service.registry
        assert {m.spec.id for m in registry.loaded()} == {"half", "one-alias"}
        one_bytes = tiny_models["one"].stat().st_size
        assert registry.memory_bytes() == one_bytes + tiny_models["half"].stat().st_size
        alias = next(m for m in registry.loaded() if m.spec.id == "one-alias")
        await stub.LoadModel(pb.LoadModelRequest(model="one"), metadata=ADMIN)  # back: shares the alias's session again
        one = next(m for m in registry.loaded() if m.spec.id == "one")
        assert one.shared is alias.shared
    finally:
        await channel.close()
        await server.stop()


@pytest.mark.parametrize("token", [None, "s3cret"])
async def test_model_administration_needs_the_admin_token(tiny_models, token: str | None) -> None:
    server, channel, stub = await running(tiny_config(tiny_models, server={"admin_token": token}))
    try:
        for metadata, expected in (
            ((), grpc.StatusCode.PERMISSION_DENIED if token is None else grpc.StatusCode.UNAUTHENTICATED),
            (
                (("authorization", "Bearer wrong"),),
                grpc.StatusCode.PERMISSION_DENIED if token is None else grpc.StatusCode.UNAUTHENTICATED,
            ),
        ):
            for call in (
                stub.LoadModel(pb.LoadModelRequest(model="one"), metadata=metadata),
                stub.UnloadModel(pb.UnloadModelRequest(model="one"), metadata=metadata),
            ):
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await call
                assert refused.value.code() == expected
        assert not server.service.registry.loaded()
        if token is not None:
            info = await stub.LoadModel(
                pb.LoadModelRequest(model="one"), metadata=(("authorization", f"Bearer {token}"),)
            )
            assert info.loaded
    finally:
        await channel.close()
        await server.stop()


async def test_listeners_bind_to_loopback_by_default() -> None:
    config = InferenceConfig.model_validate({"server": {"port": 0, "metrics_port": 0}, "registry": {"preload": []}})
    async with InferenceServer(config) as server:
        assert config.server.host == "127.0.0.1" and config.server.metrics_host == "127.0.0.1"
        for port in (server.port, server.metrics_port):
            listening = [
                ipaddress.ip_address(c.laddr.ip)
                for c in psutil.Process().net_connections("inet")
                if c.status == psutil.CONN_LISTEN and c.laddr.port == port
            ]
            loopback = [getattr(a, "ipv4_mapped", None) or a for a in listening]  # gRPC binds ::ffff:127.0.0.1
            assert listening and all(a.is_loopback for a in loopback), (port, listening)
