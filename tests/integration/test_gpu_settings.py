"""The GPU-tier settings served through a real server on the CPU: each gives the bytes the defaults give.

torch backend, I/O binding, CUDA graphs (refused here with a note: no CUDA provider) and the
layout on the model's device, each against a server with the default settings, on both protocols.
"""

from __future__ import annotations

import asyncio
import logging

import numpy as np
import pytest
import tritonclient.grpc as triton
from inference_helpers import compact_frame, make_config
from kserve_helpers import compact_inputs

from inference_service.client import InferenceClient
from inference_service.config import ModelSpec
from inference_service.serving.server import InferenceServer

pytestmark = pytest.mark.integration

MOUTH, UNET = "parametric-mouth", "synthetic-unet"
AUDIO = (32, 16, 16)
FRAMES = 3


def frames(model: str, count: int) -> list:
    rng = np.random.default_rng(7)
    return [
        compact_frame(i, model, 320, AUDIO, audio=rng.uniform(-4, 4, AUDIO).astype(np.float16).tobytes())
        for i in range(count)
    ]


async def serve(runtime: dict, model: str, count: int) -> tuple[list[np.ndarray], np.ndarray, str, str]:
    """lipsync.v1 answers to `count` frames (one batch), KServe's to the first, the provider in use and its reason."""
    config = make_config([ModelSpec(id=model, builtin=model)], runtime=runtime, registry={"preload": [model]})
    requests = frames(model, count)
    async with InferenceServer(config) as server:
        async with InferenceClient([f"127.0.0.1:{server.port}"]) as client:
            info = await client.server_info()
            results = await client.infer(requests, timeout_s=120)

        def kserve_call() -> np.ndarray:
            with triton.InferenceServerClient(f"127.0.0.1:{server.port}") as kserve:
                audio = np.frombuffer(requests[0].compact.audio, np.float16)
                inputs = compact_inputs(requests[0].compact.crop, 320, audio)
                return kserve.infer(f"{model}-compact", inputs).as_numpy("mouth")

        kserve_mouth = await asyncio.to_thread(kserve_call)
    mouths = [np.frombuffer(result.mouth, np.uint8) for result in results]
    return mouths, kserve_mouth.reshape(-1), info.providers_in_use[0], info.provider_fallback_reason


@pytest.fixture(scope="module")
def reference() -> dict[str, tuple[list[np.ndarray], np.ndarray, str, str]]:
    return {MOUTH: asyncio.run(serve({}, MOUTH, FRAMES)), UNET: asyncio.run(serve({}, UNET, 1))}


@pytest.mark.parametrize(
    ("runtime", "provider"),
    [
        ({"io_binding": True}, "CPUExecutionProvider"),
        ({"io_binding": True, "cuda_graphs": True}, "CPUExecutionProvider"),
        ({"device_layout": "on"}, "CPUExecutionProvider"),
        ({"backend": "torch"}, "TorchCPU"),
        ({"backend": "torch", "device_layout": "on", "io_binding": True}, "TorchCPU"),
    ],
    ids=["io-binding", "cuda-graphs-refused", "device-layout", "torch", "torch-device-layout"],
)
async def test_a_setting_serves_the_same_mouths(runtime: dict, provider: str, reference: dict) -> None:
    expected, expected_kserve, _, _ = reference[MOUTH]
    mouths, kserve_mouth, in_use, reason = await serve(runtime, MOUTH, FRAMES)
    assert in_use == provider
    if runtime.get("backend") == "torch":
        assert "a CPU build" in reason
    for got, want in zip(mouths, expected):
        assert np.abs(got.astype(int) - want).max() <= 1, "8-bit rounding of the same floats at most"
    assert np.array_equal(kserve_mouth, mouths[0]), "both protocols get the same frame"
    if runtime.get("backend") != "torch":
        assert all(np.array_equal(got, want) for got, want in zip(mouths, expected)), "onnxruntime: the same bytes"
        assert np.array_equal(kserve_mouth, expected_kserve)


async def test_cuda_graphs_without_the_cuda_provider_are_refused_with_a_reason(
    caplog: pytest.LogCaptureFixture, reference: dict
) -> None:
    with caplog.at_level(logging.WARNING, "inference_service.runtime.backends"):
        mouths, _, in_use, _ = await serve({"cuda_graphs": True}, MOUTH, 1)
    assert in_use == "CPUExecutionProvider"
    assert "cuda_graphs ignored: they need onnxruntime's CUDA provider, this model runs on CPUExecutionProvider" in (
        caplog.text
    )
    assert np.array_equal(mouths[0], reference[MOUTH][0][0])


async def test_the_torch_backend_serves_the_unet_as_onnxruntime_does(reference: dict) -> None:
    (expected,), _, _, _ = reference[UNET]
    (got,), kserve_mouth, in_use, _ = await serve({"backend": "torch"}, UNET, 1)
    assert in_use == "TorchCPU"
    difference = np.abs(got.astype(int) - expected)
    assert difference.max() <= 1 and (difference > 0).mean() < 0.01
    assert np.array_equal(kserve_mouth, got)
