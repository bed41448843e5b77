"""KServe v2 tensors <-> the runtime's: request inputs as named little-endian bytes, results as outputs.

Inputs travel as `raw_input_contents` (FP32, FP16, UINT8, INT64), or in the typed `contents`
fields where the protocol has one (FP32, UINT8, INT64; FP16 has none).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from inference_service.runtime.layout import LayoutError
from inference_service.runtime.raw import DTYPES, TensorBytes
from protos import kserve
from protos.kserve import service_pb2
from protos.lipsync.v1 import lipsync_pb2 as pb

# The typed field each datatype may travel in, when not raw.
_TYPED_FIELD: dict[int, str] = {
    pb.DTYPE_FLOAT32: "fp32_contents",
    pb.DTYPE_UINT8: "uint_contents",
    pb.DTYPE_INT64: "int64_contents",
}
_RANGE: dict[int, tuple[int, int]] = {pb.DTYPE_UINT8: (0, 255)}


class Tensor(NamedTuple):
    """A named tensor as bytes (runtime.raw.TensorBytes), as KServe requests and responses carry them."""

    name: str
    dtype: int
    shape: Sequence[int]
    data: bytes


def request_inputs(request: service_pb2.ModelInferRequest) -> list[Tensor]:
    """The request's inputs with their bytes; LayoutError (naming the tensor) for what cannot be read."""
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise LayoutError(f"raw_input_contents: {len(raw)} buffers for {len(request.inputs)} inputs")
    tensors = []
    for index, tensor in enumerate(request.inputs):
        code = kserve.DTYPE_OF.get(tensor.datatype)
        if code is None:
            served = ", ".join(kserve.DTYPE_OF)
            raise LayoutError(f"{tensor.name}: datatype '{tensor.datatype}' is not served ({served})")
        data = raw[index] if raw else _typed_contents(tensor, code)
        tensors.append(Tensor(tensor.name, code, tuple(tensor.shape), data))
    return tensors


def _typed_contents(tensor: Any, code: int) -> bytes:
    field = _TYPED_FIELD.get(code)
    if field is None:
        raise LayoutError(f"{tensor.name}: {tensor.datatype} travels only in raw_input_contents")
    values = np.asarray(getattr(tensor.contents, field))
    low, high = _RANGE.get(code, (None, None))
    if low is not None and values.size and (values.min() < low or values.max() > high):
        raise LayoutError(f"{tensor.name}: {field} holds values outside {tensor.datatype}'s range")
    return values.astype(DTYPES[code]).tobytes()


def fill_response(
    response: service_pb2.ModelInferResponse, outputs: Sequence[TensorBytes], requested: Sequence[str]
) -> None:
    """Every output, or only the requested ones in the order asked for, as raw_output_contents."""
    by_name = {output.name: output for output in outputs}
    for name in requested:
        if name not in by_name:
            raise LayoutError(f"{name}: the model has no output of that name (outputs: {', '.join(by_name)})")
    for name in requested or by_name:
        output = by_name[name]
        response.outputs.add(name=name, datatype=kserve.datatype_name(output.dtype), shape=output.shape)
        response.raw_output_contents.append(output.data)
