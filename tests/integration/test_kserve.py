"""The inference service's KServe v2 endpoint on a real port, driven with tritonclient.grpc."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as triton
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from inference_helpers import TINY, i420_crop, make_config, tiny_spec, write_tiny_model
from kserve_helpers import StreamResults, compact_inputs, infer_input
from tritonclient.utils import InferenceServerException

import lipstream
from inference_service.config import ModelSpec
from inference_service.models.builtin import ensure_builtin
from inference_service.serving.server import InferenceServer
from protos.kserve import service_pb2, service_pb2_grpc
from protos.lipsync.v1 import lipsync_pb2 as pb
from protos.lipsync.v1 import lipsync_pb2_grpc as pb_grpc

AUDIO = (2, 4)
MOUTH = "parametric-mouth"


@pytest.fixture
async def server(tmp_path: Path):
    specs = [tiny_spec("one", write_tiny_model(tmp_path / "one.onnx")), ModelSpec(id=MOUTH, builtin=MOUTH)]
    config = make_config(specs, registry={"preload": [MOUTH]})
    async with InferenceServer(config) as running:
        yield running


def client(server: InferenceServer) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(f"127.0.0.1:{server.port}")


def status_of(call) -> tuple[str, str]:
    """Run a tritonclient call that must fail; its gRPC status and message."""
    with pytest.raises(InferenceServerException) as failed:
        call()
    return failed.value.status(), failed.value.message()


async def test_health_metadata_reflection(server: InferenceServer) -> None:
    def calls() -> None:
        with client(server) as kserve:
            assert kserve.is_server_live() and kserve.is_server_ready()
            metadata = kserve.get_server_metadata()
            assert (metadata.name, metadata.version) == ("lipstream", lipstream.__version__)
            assert kserve.is_model_ready(MOUTH) and kserve.is_model_ready(f"{MOUTH}-compact")
            assert not kserve.is_model_ready("one"), "a model not loaded yet is not ready"
            assert not kserve.is_model_ready("no-such-model")
            assert not kserve.is_model_ready(MOUTH, model_version="2")

    await asyncio.to_thread(calls)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        health = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="inference.GRPCInferenceService")
        )
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        call = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo()
        await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
        listed = await call.read()
        await call.done_writing()
        names = {service.name for service in listed.list_services_response.service}
        assert {"inference.GRPCInferenceService", "lipsync.v1.LipSync"} <= names


async def test_model_metadata_and_config_of_both_variants(server: InferenceServer) -> None:
    def calls() -> None:
        with client(server) as kserve:
            contract = kserve.get_model_metadata(MOUTH)
            shapes = {t.name: (t.datatype, list(t.shape)) for t in [*contract.inputs, *contract.outputs]}
            assert shapes == {
                "input": ("FP32", [-1, 6, 320, 320]),
                "audio": ("FP32", [-1, 32, 16, 16]),
                "output": ("FP32", [-1, 3, 320, 320]),
            }
            compact = kserve.get_model_metadata(f"{MOUTH}-compact")
            shapes = {t.name: (t.datatype, list(t.shape)) for t in [*compact.inputs, *compact.outputs]}
            assert shapes == {
                "crop": ("UINT8", [-1, 480, 320]),
                "audio": ("FP16", [-1, 8192]),
                "mouth": ("UINT8", [-1, 480, 320]),
            }
            config = kserve.get_model_config(f"{MOUTH}-compact").config
            assert config.parameters["lipstream.lookahead_frames"].string_value == "1"
            assert config.max_batch_size == 8 and [list(i.dims) for i in config.input] == [[480, 320], [8192]]
            assert status_of(lambda: kserve.get_model_metadata("no-such-model"))[0] == "StatusCode.NOT_FOUND"

    await asyncio.to_thread(calls)


async def test_infer_with_the_contract_tensors_equals_onnxruntime(server: InferenceServer) -> None:
    rng = np.random.default_rng(1)
    image = rng.uniform(0, 1, (2, 6, 320, 320)).astype(np.float32)
    audio = rng.uniform(-4, 4, (2, 32, 16, 16)).astype(np.float32)
    direct = ort.InferenceSession(str(ensure_builtin(MOUTH)), providers=["CPUExecutionProvider"])
    (expected,) = direct.run(["output"], {"input": image, "audio": audio})

    def call() -> np.ndarray:
        with client(server) as kserve:
            result = kserve.infer(MOUTH, [infer_input("input", image), infer_input("audio", audio)], request_id="7")
            assert result.get_response().id == "7"
            return result.as_numpy("output")

    got = await asyncio.to_thread(call)
    assert got.shape == (2, 3, 320, 320)
    np.testing.assert_allclose(got, expected, atol=1e-6)


async def test_compact_variant_answers_what_lipsync_v1_answers(server: InferenceServer) -> None:
    """FP16 audio and UINT8 crops in, an I420 mouth out: the same bytes as lipsync.v1's compact frame."""
    crop = i420_crop(320, seed=5)
    audio = np.random.default_rng(2).uniform(-4, 4, (32, 16, 16)).astype(np.float16)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        frame = pb.FrameRequest(frame_id=1, model=MOUTH, compact=pb.CompactInput(crop=crop, audio=audio.tobytes()))
        reply = await pb_grpc.LipSyncStub(channel).Infer(pb.InferRequest(frames=[frame]), timeout=10)

    def call() -> tuple[np.ndarray, dict]:
        with client(server) as kserve:
            result = kserve.infer(f"{MOUTH}-compact", compact_inputs(crop, 320, audio))
            return result.as_numpy("mouth"), result.get_response(as_json=True)["parameters"]

    mouth, parameters = await asyncio.to_thread(call)
    assert mouth.dtype == np.uint8 and mouth.shape == (1, 480, 320)
    assert mouth.tobytes() == reply.results[0].mouth
    assert int(parameters["compute_us"]["int64_param"]) > 0 and int(parameters["batch_size"]["int64_param"]) >= 1


async def test_typed_contents_are_read_like_raw_ones(server: InferenceServer) -> None:
    image = np.full((1, 6, TINY, TINY), 0.25, np.float32)
    request = service_pb2.ModelInferRequest(model_name="one")
    request.inputs.add(name="input", datatype="FP32", shape=image.shape).contents.fp32_contents.extend(image.ravel())
    request.inputs.add(name="audio", datatype="FP32", shape=[1, *AUDIO]).contents.fp32_contents.extend([0.5] * 8)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        reply = await service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=10)
    (output,) = reply.outputs
    assert output.name == "output" and list(output.shape) == [1, 3, TINY, TINY]
    np.testing.assert_allclose(np.frombuffer(reply.raw_output_contents[0], np.float32), 0.75)


async def test_stream_answers_in_order_and_goes_on_after_an_error(server: InferenceServer) -> None:
    crops = [i420_crop(TINY, seed=i) for i in range(8)]
    silent = np.zeros(AUDIO, np.float16)

    def stream() -> list:
        results = StreamResults()
        with client(server) as kserve:
            unary = [kserve.infer("one-compact", compact_inputs(c, TINY, silent)).as_numpy("mouth") for c in crops]
            kserve.start_stream(callback=results)
            for index, crop in enumerate(crops):
                if index == 3:
                    kserve.async_stream_infer("no-such-model", compact_inputs(crop, TINY, silent), request_id="bad")
                kserve.async_stream_infer("one-compact", compact_inputs(crop, TINY, silent), request_id=str(index))
            answered = results.take(len(crops) + 1)
            kserve.stop_stream()
        return [unary, answered]

    unary, answered = await asyncio.to_thread(stream)
    errors = [(position, error) for position, (_, error) in enumerate(answered) if error is not None]
    assert len(errors) == 1 and errors[0][0] == 3, errors
    assert "NOT_FOUND" in str(errors[0][1]) and "no-such-model" in str(errors[0][1])
    results = [result for result, error in answered if error is None]
    assert [r.get_response().id for r in results] == [str(i) for i in range(8)]
    for result, expected in zip(results, unary):
        assert np.array_equal(result.as_numpy("mouth"), expected)


async def test_bad_requests_get_the_protocols_status_naming_the_tensor(server: InferenceServer) -> None:
    crop = np.frombuffer(i420_crop(TINY), np.uint8).reshape(1, TINY * 3 // 2, TINY)
    audio = np.zeros((1, 8), np.float16)

    def calls() -> dict[str, tuple[str, str]]:
        with client(server) as kserve:

            def infer(model: str, *inputs, outputs=None):
                return lambda: kserve.infer(model, list(inputs), outputs=outputs)

            return {
                "unknown model": status_of(
                    infer("nope-compact", infer_input("crop", crop), infer_input("audio", audio))
                ),
                "wrong shape": status_of(
                    infer("one-compact", infer_input("crop", crop), infer_input("audio", audio[:, :2]))
                ),
                "wrong dtype": status_of(
                    infer("one-compact", infer_input("crop", crop), infer_input("audio", audio.astype(np.float32)))
                ),
                "missing input": status_of(infer("one-compact", infer_input("audio", audio))),
                "unknown input": status_of(
                    infer(
                        "one-compact", infer_input("crop", crop), infer_input("audio", audio), infer_input("x", audio)
                    )
                ),
                "unknown output": status_of(
                    infer(
                        "one-compact",
                        infer_input("crop", crop),
                        infer_input("audio", audio),
                        outputs=[triton.InferRequestedOutput("lips")],
                    )
                ),
                "wrong version": status_of(
                    lambda: kserve.infer("one", [infer_input("audio", audio)], model_version="3")
                ),
                "budget": status_of(  # Triton's `timeout` parameter, in microseconds: a frame's budget
                    lambda: kserve.infer(
                        "one-compact", [infer_input("crop", crop), infer_input("audio", audio)], timeout=1
                    )
                ),
            }

    statuses = await asyncio.to_thread(calls)
    invalid = "StatusCode.INVALID_ARGUMENT"
    expected = {
        "unknown model": ("StatusCode.NOT_FOUND", "nope-compact"),
        "wrong shape": (invalid, "audio: shape [1, 2], model wants ['?', 8]"),
        "wrong dtype": (invalid, "audio: dtype FP32, model wants FP16"),
        "missing input": (invalid, "crop: missing input tensor"),
        "unknown input": (invalid, "x: the model has no input of that name"),
        "unknown output": (invalid, "lips: the model has no output"),
        "wrong version": ("StatusCode.NOT_FOUND", "unknown version '3'"),
        "budget": ("StatusCode.DEADLINE_EXCEEDED", "frame budget"),
    }
    for case, (code, words) in expected.items():
        assert statuses[case][0] == code and words in statuses[case][1], (case, statuses[case])


async def test_a_full_queue_is_resource_exhausted_on_the_stream(tmp_path: Path) -> None:
    config = make_config(
        [tiny_spec("one", write_tiny_model(tmp_path / "one.onnx"))],
        registry={"preload": ["one"]},
        batching={"queue_size": 1, "max_batch": 1, "workers": 1},
    )
    request = service_pb2.ModelInferRequest(model_name="one-compact")
    request.inputs.add(name="crop", datatype="UINT8", shape=[1, TINY * 3 // 2, TINY])
    request.inputs.add(name="audio", datatype="FP16", shape=[1, 8])
    request.raw_input_contents.extend([i420_crop(TINY), bytes(16)])
    async with InferenceServer(config) as running:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            call = service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelStreamInfer()
            for _ in range(40):
                await call.write(request)
            await call.done_writing()
            answers = [answer async for answer in call]
    refused = [a.error_message for a in answers if a.error_message]
    assert len(answers) == 40 and refused, "40 frames at once into a queue of one: some must be refused"
    assert all(message.startswith("RESOURCE_EXHAUSTED: ") for message in refused), refused
    assert len(refused) < 40, "frames that fit the queue must still be served"


async def test_frames_of_both_protocols_share_model_runs(tmp_path: Path) -> None:
    """One lipsync.v1 stream and one KServe stream, each with one frame in flight: a batch of two holds both."""
    config = make_config(
        [tiny_spec("one", write_tiny_model(tmp_path / "one.onnx"))],
        registry={"preload": ["one"]},
        batching={"max_queue_delay_us": 50_000},
    )
    request = service_pb2.ModelInferRequest(model_name="one-compact")
    request.inputs.add(name="crop", datatype="UINT8", shape=[1, TINY * 3 // 2, TINY])
    request.inputs.add(name="audio", datatype="FP16", shape=[1, 8])
    request.raw_input_contents.extend([i420_crop(TINY), bytes(16)])
    frame = pb.FrameRequest(model="one", compact=pb.CompactInput(crop=i420_crop(TINY), audio=bytes(16)))
    async with InferenceServer(config) as running, grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        lipsync = pb_grpc.LipSyncStub(channel).StreamInfer()
        kserve = service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelStreamInfer()

        async def lipsync_batches() -> list[int]:
            sizes = []
            for frame_id in range(10):
                frame.frame_id = frame_id
                await lipsync.write(frame)
                sizes.append((await lipsync.read()).timings.batch_size)
            await lipsync.done_writing()
            return sizes

        async def kserve_batches() -> list[int]:
            sizes = []
            for _ in range(10):
                await kserve.write(request)
                answer = await kserve.read()
                assert not answer.error_message, answer.error_message
                sizes.append(answer.infer_response.parameters["batch_size"].int64_param)
            await kserve.done_writing()
            return sizes

        from_lipsync, from_kserve = await asyncio.gather(lipsync_batches(), kserve_batches())
        runs = running.metrics.registry.get_sample_value("lipstream_inference_batch_size_count", {"model": "one"})
    assert max(from_lipsync) == 2 and max(from_kserve) == 2, (from_lipsync, from_kserve)
    assert runs is not None and runs < 20, "20 frames in fewer model runs: frames of the two protocols were batched"


async def test_a_stream_cancelled_mid_flight_leaves_no_reader_behind(server: InferenceServer) -> None:
    request = service_pb2.ModelInferRequest(model_name=f"{MOUTH}-compact")
    request.inputs.add(name="crop", datatype="UINT8", shape=[1, 480, 320])
    request.inputs.add(name="audio", datatype="FP16", shape=[1, 8192])
    request.raw_input_contents.extend([i420_crop(320), bytes(2 * 8192)])

    def readers() -> list[asyncio.Task]:
        return [t for t in asyncio.all_tasks() if t.get_name() == "serving-stream-reader" and not t.done()]

    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        call = service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelStreamInfer()
        for _ in range(6):
            await call.write(request)
        await call.read()
        assert readers(), "the stream's reader runs while the call is open"
        call.cancel()
    for _ in range(50):  # the server learns of the cancellation from the transport
        if not readers():
            break
        await asyncio.sleep(0.02)
    assert not readers(), "a cancelled call's reader must end with it"
