"""Small real ONNX models and request builders for the inference tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from inference_service.config import InferenceConfig, ModelSpec
from protos.lipsync.v1 import lipsync_pb2 as pb

ADMIN_TOKEN = "test-admin-token"
ADMIN = (("authorization", f"Bearer {ADMIN_TOKEN}"),)  # call metadata for LoadModel / UnloadModel
TINY = 16  # crop size of the tiny models: fast, still the full contract


def write_tiny_model(path: Path, gain: float = 1.0, padding_bytes: int = 0) -> Path:
    """output = clip(reference * gain + mean(audio), 0, 1): a real graph with the contract's names.

    `padding_bytes` adds an unused initializer so the file has a known size (memory-budget tests).
    """
    image = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 6, TINY, TINY])
    audio = helper.make_tensor_value_info("audio", TensorProto.FLOAT, ["batch", 2, 4])
    output = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 3, TINY, TINY])
    inits = [
        helper.make_tensor("starts", TensorProto.INT64, [1], [0]),
        helper.make_tensor("ends", TensorProto.INT64, [1], [3]),
        helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
        helper.make_tensor("gain", TensorProto.FLOAT, [], [gain]),
        helper.make_tensor("lo", TensorProto.FLOAT, [], [0.0]),
        helper.make_tensor("hi", TensorProto.FLOAT, [], [1.0]),
    ]
    if padding_bytes:
        inits.append(
            helper.make_tensor(
                "padding", TensorProto.FLOAT, [padding_bytes // 4], np.zeros(padding_bytes // 4, np.float32)
            )
        )
    nodes = [
        helper.make_node("Slice", ["input", "starts", "ends", "axes"], ["reference"]),
        helper.make_node("Mul", ["reference", "gain"], ["scaled"]),
        helper.make_node("ReduceMean", ["audio"], ["level"], axes=[1, 2], keepdims=1),
        helper.make_node("Unsqueeze", ["level", "axes"], ["level4"]),
        helper.make_node("Add", ["scaled", "level4"], ["shifted"]),
        helper.make_node("Clip", ["shifted", "lo", "hi"], ["output"]),
    ]
    graph = helper.make_graph(nodes, "tiny", [image, audio], [output], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def tiny_spec(model_id: str, path: Path) -> ModelSpec:
    return ModelSpec(id=model_id, path=str(path), crop_size=TINY, mask=(2, 2, 13, 13), audio_shape=(2, 4))


def make_config(models: list[ModelSpec] | None = None, **sections: dict) -> InferenceConfig:
    """A config for a server on free ports; `models` replaces the built-in list (no preload)."""
    data: dict = {
        "server": {"host": "127.0.0.1", "port": 0, "metrics_port": 0, "grace_s": 0.5, "admin_token": ADMIN_TOKEN}
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    if models is not None:
        data["models"] = [spec.model_dump() for spec in models]
        data.setdefault("registry", {}).setdefault("preload", [])
    return InferenceConfig.model_validate(data)


def i420_crop(size: int, seed: int = 0) -> bytes:
    """An in-gamut picture (what an edge really sends), as I420 bytes."""
    import cv2

    rng = np.random.default_rng(seed)
    coarse = rng.integers(40, 216, (4, 4, 3), dtype=np.uint8)
    bgr = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_LINEAR)  # smooth, like a face
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420).tobytes()


def audio_bytes(shape: tuple[int, ...], value: float = 0.0) -> bytes:
    return np.full(shape, value, np.float16).tobytes()


def compact_frame(
    frame_id: int,
    model: str,
    size: int,
    audio_shape: tuple[int, ...],
    crop: bytes | None = None,
    audio: bytes | None = None,
    **extra: int,
) -> pb.FrameRequest:
    return pb.FrameRequest(
        frame_id=frame_id,
        model=model,
        compact=pb.CompactInput(
            crop=crop if crop is not None else i420_crop(size, seed=frame_id),
            crop_format=pb.IMAGE_FORMAT_I420,
            audio=audio if audio is not None else audio_bytes(audio_shape),
        ),
        **extra,
    )


def start_inference_process(port: int) -> subprocess.Popen[bytes]:
    """`lipstream inference` in a process of its own on `port` (metrics on a free port), as a user starts it."""
    command = [sys.executable, "-m", "lipstream.cli", "--log-level", "WARNING", "inference", "--port", str(port),
               "--metrics-port", "0"]  # fmt: skip
    return subprocess.Popen(command, env=os.environ.copy())
