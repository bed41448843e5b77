"""KServe v2 (the Open Inference Protocol) with Triton's additions, and lipstream's conventions on it.

The generated code is the one `tritonclient[grpc]` ships (`tritonclient.grpc.service_pb2`,
`service_pb2_grpc`, `model_config_pb2`), not protos copied into this repository, because:
- NVIDIA regenerates it with every Triton release from the server's own `grpc_service.proto`, so it
  is the protocol Triton speaks, `ModelStreamInfer` and `ModelConfig` included (KServe's own
  `grpc_predict_v2.proto` has neither, and no published package of generated code);
- it is the package KServe/Triton users (and lipstream's tests) call servers with: client and server
  cannot drift apart, and there is no copied .proto to keep in step;
- its servicer base and `add_GRPCInferenceServiceServicer_to_server` work with `grpc.aio` servers.

lipstream's conventions (the same on its own server and in a `lipstream models export-triton`
repository, so an edge cannot tell them apart):
- model `ID` has the model's own tensors (the contract: `input`, `audio` -> `output`, float32);
- model `ID-compact` has the compact wire: `crop` UINT8 [B, S*3/2, S] (an I420 crop of side S),
  `audio` FP16 [B, N] (the model's audio window flattened: 8192 values for the contract's 32x16x16)
  -> `mouth` UINT8 [B, S*3/2, S] (I420), about 323 KB a frame in and out. Both inputs' shapes follow
  from their byte counts, so a client needs to know nothing of the model to send a frame;
- request parameter `timeout` (int64, microseconds; Triton's own) is a frame's budget;
- lipstream's server adds response parameters `queue_us`, `compute_us`, `batch_size`, `total_us`;
- a model's config carries parameter `lipstream.lookahead_frames` (the edge's audio look-ahead);
- on `ModelStreamInfer` a failed request is answered with `error_message` (Triton's convention),
  which lipstream's server begins with the gRPC status name (`NOT_FOUND: ...`), and the stream goes on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

from tritonclient.grpc import model_config_pb2, service_pb2, service_pb2_grpc

from protos.lipsync.v1 import lipsync_pb2 as pb

__all__ = ["model_config_pb2", "service_pb2", "service_pb2_grpc"]

SERVICE_NAME: str = service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name

COMPACT_SUFFIX = "-compact"
CROP = "crop"
AUDIO = "audio"
MOUTH = "mouth"

TIMEOUT_PARAM = "timeout"
TIMING_PARAMS = ("queue_us", "compute_us", "batch_size", "total_us")
LOOKAHEAD_PARAM = "lipstream.lookahead_frames"

# KServe datatype names <-> lipsync.v1's dtypes (the ones the runtime moves as raw tensors).
DTYPE_OF: dict[str, int] = {
    "UINT8": pb.DTYPE_UINT8,
    "FP16": pb.DTYPE_FLOAT16,
    "FP32": pb.DTYPE_FLOAT32,
    "INT64": pb.DTYPE_INT64,
}
DATATYPE_OF: dict[int, str] = {code: name for name, code in DTYPE_OF.items()}
# ... and Triton's model-config data types.
CONFIG_TYPE_OF: dict[str, int] = {name: model_config_pb2.DataType.Value(f"TYPE_{name}") for name in DTYPE_OF}


def compact_name(model_id: str) -> str:
    return model_id + COMPACT_SUFFIX


def i420_shape(crop_size: int) -> tuple[int, int]:
    """An I420 crop of side `crop_size` as a 2-D uint8 tensor: the Y rows, then U and V."""
    return crop_size * 3 // 2, crop_size


def datatype_name(code: int) -> str:
    return DATATYPE_OF.get(code, f"dtype {code}")


class TensorSpec(NamedTuple):
    """A tensor as KServe metadata and Triton configs describe it: -1 for a dynamic axis (the batch)."""

    name: str
    datatype: str
    shape: tuple[int, ...]


def compact_tensors(crop_size: int, audio_shape: Sequence[int]) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """The compact variant's inputs and outputs for a model of this crop size and audio window."""
    crop = (-1, *i420_shape(crop_size))
    inputs = [TensorSpec(CROP, "UINT8", crop), TensorSpec(AUDIO, "FP16", (-1, math.prod(audio_shape)))]
    return inputs, [TensorSpec(MOUTH, "UINT8", crop)]


def model_config(
    name: str,
    platform: str,
    max_batch_size: int,
    inputs: Sequence[TensorSpec],
    outputs: Sequence[TensorSpec],
    lookahead_frames: int | None = None,
) -> model_config_pb2.ModelConfig:
    """A Triton model config with batching on the first axis (Triton's dims leave it out)."""
    config = model_config_pb2.ModelConfig(name=name, platform=platform, max_batch_size=max_batch_size)
    for spec in inputs:
        config.input.add(name=spec.name, data_type=CONFIG_TYPE_OF[spec.datatype], dims=spec.shape[1:])
    for spec in outputs:
        config.output.add(name=spec.name, data_type=CONFIG_TYPE_OF[spec.datatype], dims=spec.shape[1:])
    if lookahead_frames is not None:
        config.parameters[LOOKAHEAD_PARAM].string_value = str(lookahead_frames)
    return config
