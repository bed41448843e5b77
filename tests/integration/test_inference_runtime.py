"""Provider fall-back, config validation, the committed protos, and the client library."""

from __future__ import annotations

import asyncio
import filecmp
from pathlib import Path

import grpc
import onnxruntime as ort
import pytest
from dns_helpers import dns_server
from inference_helpers import TINY, compact_frame, make_config, tiny_spec, write_tiny_model

from inference_service.client import FrameFailed, InferenceClient, InferenceUnavailable, ProtocolName, channel_target
from inference_service.metrics import InferenceMetrics
from inference_service.runtime.registry import ModelRegistry
from inference_service.serving.server import InferenceServer
from inference_service.serving.service import LipSyncService
from lipstream.lifecycle import free_port
from protos import generate
from protos.lipsync.v1 import lipsync_pb2_grpc as pb_grpc

AUDIO = (2, 4)


def failing_gpu_factory(path: str, sess_options=None, providers=None):
    """What a broken CUDA install does: the GPU session cannot be created."""
    names = [p[0] if isinstance(p, tuple) else p for p in providers]
    if any(name != "CPUExecutionProvider" for name in names):
        raise RuntimeError("CUDA failure 100: no CUDA-capable device is detected")
    return ort.InferenceSession(path, sess_options=sess_options, providers=names)


async def test_gpu_start_failure_falls_back_to_cpu_and_says_so(tmp_path: Path) -> None:
    config = make_config(
        [tiny_spec("one", write_tiny_model(tmp_path / "one.onnx"))],
        runtime={"providers": ["cuda", "cpu"]},
        registry={"preload": ["one"]},
    )
    metrics = InferenceMetrics()
    registry = ModelRegistry(config, session_factory=failing_gpu_factory)
    # Pretend this build offers CUDA, so the factory is really asked for it.
    original = ort.get_available_providers
    ort.get_available_providers = lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"]
    try:
        server = InferenceServer(config, LipSyncService(config, metrics, registry))
        server.metrics = metrics
        async with server:
            async with InferenceClient([f"127.0.0.1:{server.port}"]) as client:
                info = await client.server_info()
                results = await client.infer([compact_frame(1, "one", TINY, AUDIO)], timeout_s=5)
    finally:
        ort.get_available_providers = original
    assert info.providers_requested == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert info.providers_in_use == ["CPUExecutionProvider"]
    assert "no CUDA-capable device" in info.provider_fallback_reason
    assert results[0].mouth
    assert (
        metrics.registry.get_sample_value(
            "lipstream_inference_provider", {"model": "one", "provider": "CPUExecutionProvider"}
        )
        == 1.0
    )


async def test_gpu_provider_missing_from_build_is_reported(tmp_path: Path) -> None:
    config = make_config(
        [tiny_spec("one", write_tiny_model(tmp_path / "one.onnx"))],
        runtime={"providers": ["tensorrt"]},
        registry={"preload": ["one"]},
    )
    async with InferenceServer(config) as server:
        info = server.service.server_info()
    assert info.providers_in_use == ["CPUExecutionProvider"]
    assert "TensorrtExecutionProvider not available" in info.provider_fallback_reason


def test_committed_protos_match_regeneration(tmp_path: Path) -> None:
    generate.generate(tmp_path)
    generated = tmp_path / "protos" / "lipsync" / "v1"
    committed = Path(generate.__file__).parent / "lipsync" / "v1"
    names = sorted(p.name for p in generated.iterdir())
    assert names == ["lipsync_pb2.py", "lipsync_pb2.pyi", "lipsync_pb2_grpc.py"]
    _, mismatch, errors = filecmp.cmpfiles(generated, committed, names, shallow=False)
    assert not mismatch and not errors, f"regenerate with `python -m protos.generate`: {mismatch + errors}"


def test_channel_target_builds_round_robin_lists() -> None:
    assert channel_target(["inference:50051"]) == "dns:///inference:50051"
    assert channel_target(["dns://10.0.0.10/inference:50051"]) == "dns://10.0.0.10/inference:50051"
    assert channel_target(["ipv4:10.0.0.1:1,10.0.0.2:1"]) == "ipv4:10.0.0.1:1,10.0.0.2:1"
    assert channel_target(["127.0.0.1:1", "localhost:2"]) == "ipv4:127.0.0.1:1,127.0.0.1:2"
    with pytest.raises(ValueError):
        channel_target(["no-port", "x:1"])


async def test_one_dns_name_with_several_addresses_spreads_streams_over_them(tmp_path: Path) -> None:
    """As edges use a Kubernetes headless Service: one name, an address per server, round_robin over all."""
    model = write_tiny_model(tmp_path / "one.onnx")
    port = free_port()
    preload = {"preload": ["one"]}
    servers = [
        InferenceServer(make_config([tiny_spec("one", model)], registry=preload, server={"host": host, "port": port}))
        for host in ("127.0.0.1", "[::1]")
    ]
    for server in servers:
        await server.start()
    try:
        async with dns_server(["127.0.0.1", "::1"]) as (dns_port, asked):
            client = InferenceClient([f"dns://127.0.0.1:{dns_port}/inference.test:{port}"])
            streams = [client.open_stream() for _ in range(4)]
            for stream in streams:
                assert (await stream.submit(compact_frame(1, "one", TINY, AUDIO))).mouth
            served = [
                s.metrics.registry.get_sample_value("lipstream_inference_frames_total", {"model": "one"}) or 0
                for s in servers
            ]
            assert "inference.test" in asked
            assert all(count >= 1 for count in served), f"round_robin left an address idle: {served}"
            for stream in streams:
                await stream.close()
            await client.close()
    finally:
        for server in servers:
            await server.stop()


@pytest.mark.parametrize("protocol", ["lipsync", "kserve"])
async def test_client_spreads_streams_and_survives_a_dead_server(tmp_path: Path, protocol: ProtocolName) -> None:
    model = write_tiny_model(tmp_path / "one.onnx")
    config = make_config([tiny_spec("one", model)], registry={"preload": ["one"]})
    first, second = InferenceServer(config), InferenceServer(config)
    await first.start()
    await second.start()
    targets = [f"127.0.0.1:{first.port}", f"127.0.0.1:{second.port}"]
    client = InferenceClient(targets, protocol=protocol, backoff_initial_s=0.05)
    assert await client.reachable(timeout_s=5) and await client.lookahead_frames("one") == 1
    streams = [client.open_stream() for _ in range(4)]
    try:
        for stream in streams:
            result = await stream.submit(compact_frame(1, "one", TINY, AUDIO))
            assert result.mouth
        served = [
            s.metrics.registry.get_sample_value("lipstream_inference_frames_total", {"model": "one"}) or 0
            for s in (first, second)
        ]
        assert all(count >= 1 for count in served), f"round_robin left a server idle: {served}"

        with pytest.raises(FrameFailed) as bad:
            await streams[0].submit(compact_frame(2, "nope", TINY, AUDIO))
        assert bad.value.code == grpc.StatusCode.NOT_FOUND.value[0]

        await first.stop()
        recovered = 0
        for attempt in range(100):
            frame_id = 10 + attempt
            results = []
            for stream in streams:
                try:
                    results.append(
                        await asyncio.wait_for(stream.submit(compact_frame(frame_id, "one", TINY, AUDIO)), 2)
                    )
                except InferenceUnavailable:
                    results.append(None)
            if all(r is not None for r in results):
                recovered = attempt + 1
                break
            await asyncio.sleep(0.05)
        assert recovered, "streams did not fail over to the surviving server"
    finally:
        for stream in streams:
            await stream.close()
        await client.close()
        await second.stop()
        await first.stop()


class _SilentServer(pb_grpc.LipSyncServicer):
    """A server that hangs: it takes frames and never answers, keeping the connection up."""

    async def StreamInfer(self, request_iterator, context):  # noqa: N802 - gRPC's name
        async for _ in request_iterator:
            pass
        if False:  # an async generator that never yields
            yield


async def test_hung_server_is_given_up_for_a_live_one(tmp_path: Path) -> None:
    hung = grpc.aio.server()
    pb_grpc.add_LipSyncServicer_to_server(_SilentServer(), hung)
    hung_port = hung.add_insecure_port("127.0.0.1:0")
    await hung.start()
    config = make_config([tiny_spec("one", write_tiny_model(tmp_path / "one.onnx"))], registry={"preload": ["one"]})
    async with InferenceServer(config) as live:
        client = InferenceClient([f"127.0.0.1:{hung_port}", f"127.0.0.1:{live.port}"], backoff_initial_s=0.01)
        streams = [client.open_stream() for _ in range(2)]
        try:
            answered = [0, 0]  # round_robin puts one of the two streams on the hung server
            for frame_id in range(60):
                for index, stream in enumerate(streams):
                    try:
                        future = stream.submit(compact_frame(frame_id, "one", TINY, AUDIO))
                        await asyncio.wait_for(asyncio.shield(future), 0.1)
                        answered[index] += 1
                    except (InferenceUnavailable, TimeoutError):
                        pass
                if min(answered) >= 2:
                    break
                await asyncio.sleep(0.05)
            assert min(answered) >= 2, f"a stream stayed on the hung server: answers per stream {answered}"
        finally:
            for stream in streams:
                await stream.close()
            await client.close()
            await hung.stop(0)


async def test_a_stream_that_reconnects_leaves_no_task_behind(tmp_path: Path) -> None:
    config = make_config([tiny_spec("one", write_tiny_model(tmp_path / "one.onnx"))], registry={"preload": ["one"]})
    server = InferenceServer(config)
    await server.start()
    port = server.port
    client = InferenceClient([f"127.0.0.1:{port}"], backoff_initial_s=0.01, backoff_max_s=0.05)
    stream = client.open_stream()
    try:
        for attempt in range(5):
            for _ in range(200):  # until the stream is (re)connected and answers
                try:
                    await asyncio.wait_for(stream.submit(compact_frame(attempt, "one", TINY, AUDIO)), 2)
                    break
                except InferenceUnavailable:
                    await asyncio.sleep(0.02)
            else:
                pytest.fail("the stream never reconnected")
            await server.stop()
            server = InferenceServer(make_config(config.models, server={"port": port}, registry={"preload": ["one"]}))
            await server.start()
        await asyncio.sleep(0.1)
        live = [t for t in asyncio.all_tasks() if t.get_name().startswith("inference-stream") and not t.done()]
        assert len(live) <= 2, f"{len(live)} stream tasks alive for one stream: {sorted(t.get_name() for t in live)}"
    finally:
        await stream.close()
        await client.close()
        await server.stop()
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("inference-stream") and not t.done()]
