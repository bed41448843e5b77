"""What KServe names mean here: a configured model with its own tensors, or its compact variant.

`ID` is the model as its ONNX file declares it; `ID-compact` (see `protos.kserve`) takes an I420
crop and a float16 audio window and answers an I420 mouth, the layouts converted server-side by
the same `CompactLayout` as lipsync.v1's compact frames, in the same batcher. A configured id
that itself ends in `-compact` is that model: exact names win. Every model has version "1".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from inference_service.config import ModelSpec
from inference_service.runtime.raw import TensorSignature, signatures
from inference_service.runtime.registry import LoadedModel, UnknownModelError
from protos import kserve
from protos.kserve import model_config_pb2, service_pb2

VERSION = "1"
CONTRACT_PLATFORM = "onnxruntime_onnx"  # what Triton calls a model served from an ONNX file
COMPACT_PLATFORM = "lipstream_compact"


class UnknownVersionError(UnknownModelError):
    def __str__(self) -> str:
        name, version = self.args
        return f"unknown version '{version}' of model '{name}' (served: '{VERSION}')"


class Served(NamedTuple):
    """A KServe model name resolved: the configured model, and whether it is the compact variant."""

    name: str
    spec: ModelSpec
    compact: bool


def resolve(specs: Mapping[str, ModelSpec], name: str, version: str = "") -> Served:
    """UnknownModelError (NOT_FOUND) unless `name` is a configured id or one with the compact suffix."""
    spec = specs.get(name)
    compact = spec is None and name.endswith(kserve.COMPACT_SUFFIX)
    if compact:
        spec = specs.get(name.removesuffix(kserve.COMPACT_SUFFIX))
    if spec is None:
        raise UnknownModelError(name)
    if version not in ("", VERSION):
        raise UnknownVersionError(name, version)
    return Served(name, spec, compact)


def compact_signatures(spec: ModelSpec) -> dict[str, TensorSignature]:
    """The compact variant's inputs as the runtime checks raw tensors."""
    inputs, _ = kserve.compact_tensors(spec.crop_size, spec.audio_shape)
    return {t.name: TensorSignature(t.name, kserve.DTYPE_OF[t.datatype], (None, *t.shape[1:])) for t in inputs}


def _tensor_specs(tensors: Mapping[str, TensorSignature]) -> list[kserve.TensorSpec]:
    return [
        kserve.TensorSpec(sig.name, kserve.datatype_name(sig.dtype), tuple(-1 if d is None else d for d in sig.shape))
        for sig in tensors.values()
    ]


def tensors(served: Served, model: LoadedModel) -> tuple[list[kserve.TensorSpec], list[kserve.TensorSpec]]:
    """Inputs and outputs: the compact layout's, or the ONNX session's own."""
    if served.compact:
        return kserve.compact_tensors(served.spec.crop_size, served.spec.audio_shape)
    return _tensor_specs(model.shared.inputs), _tensor_specs(signatures(model.session.get_outputs()))


def metadata(served: Served, model: LoadedModel) -> service_pb2.ModelMetadataResponse:
    inputs, outputs = tensors(served, model)
    reply = service_pb2.ModelMetadataResponse(
        name=served.name, versions=[VERSION], platform=COMPACT_PLATFORM if served.compact else CONTRACT_PLATFORM
    )
    for target, specs in ((reply.inputs, inputs), (reply.outputs, outputs)):
        for spec in specs:
            target.add(name=spec.name, datatype=spec.datatype, shape=spec.shape)
    return reply


def config(served: Served, model: LoadedModel, max_batch: int, max_queue_delay_us: int) -> model_config_pb2.ModelConfig:
    """Triton's view of the model, with lipstream's look-ahead parameter and this server's batching."""
    inputs, outputs = tensors(served, model)
    platform = COMPACT_PLATFORM if served.compact else CONTRACT_PLATFORM
    reply = kserve.model_config(served.name, platform, max_batch, inputs, outputs, served.spec.lookahead_frames)
    reply.dynamic_batching.max_queue_delay_microseconds = max_queue_delay_us
    return reply
