"""Raw mode: named tensors passed straight to the model, checked against its signature."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

import numpy as np

from inference_service.runtime.layout import LayoutError
from protos.lipsync.v1 import lipsync_pb2 as pb

DTYPES: dict[int, np.dtype] = {
    pb.DTYPE_UINT8: np.dtype("<u1"),
    pb.DTYPE_FLOAT16: np.dtype("<f2"),
    pb.DTYPE_FLOAT32: np.dtype("<f4"),
    pb.DTYPE_INT64: np.dtype("<i8"),
}
ORT_TYPES = {
    "tensor(uint8)": pb.DTYPE_UINT8,
    "tensor(float16)": pb.DTYPE_FLOAT16,
    "tensor(float)": pb.DTYPE_FLOAT32,
    "tensor(int64)": pb.DTYPE_INT64,
}
_DTYPE_CODES: dict[np.dtype, pb.DType] = {dtype: cast("pb.DType", code) for code, dtype in DTYPES.items()}


BatchKey = tuple[tuple[str, tuple[int, ...]], ...]


@dataclass(frozen=True)
class TensorSignature:
    name: str
    dtype: int
    shape: tuple[int | None, ...]  # None = dynamic axis


def signatures(args: Sequence[Any]) -> dict[str, TensorSignature]:
    """From onnxruntime NodeArg lists (onnxruntime publishes no types for them)."""
    result = {}
    for arg in args:
        shape = tuple(dim if isinstance(dim, int) else None for dim in arg.shape)
        result[arg.name] = TensorSignature(arg.name, ORT_TYPES.get(arg.type, pb.DTYPE_UNSPECIFIED), shape)
    return result


class TensorBytes(Protocol):
    """A named tensor as little-endian bytes: lipsync.v1's `Tensor`, or a KServe input with its contents."""

    @property
    def name(self) -> str: ...
    @property
    def dtype(self) -> int: ...
    @property
    def shape(self) -> Sequence[int]: ...
    @property
    def data(self) -> bytes: ...


def decode_raw(
    tensors: Iterable[TensorBytes],
    expected: dict[str, TensorSignature],
    dtype_name: Callable[[int], str] = pb.DType.Name,
) -> dict[str, np.ndarray]:
    """Validate every tensor (name, dtype, shape, byte count) and view it as an array.

    `dtype_name` spells dtypes in errors as the caller's protocol does.
    """
    arrays: dict[str, np.ndarray] = {}
    for tensor in tensors:
        sig = expected.get(tensor.name)
        if sig is None:
            known = ", ".join(expected)
            raise LayoutError(f"{tensor.name or '<unnamed>'}: the model has no input of that name (inputs: {known})")
        if tensor.dtype != sig.dtype:
            raise LayoutError(f"{tensor.name}: dtype {dtype_name(tensor.dtype)}, model wants {dtype_name(sig.dtype)}")
        shape = tuple(tensor.shape)
        if len(shape) != len(sig.shape) or any(w is not None and w != got for w, got in zip(sig.shape, shape)):
            wanted = [dim if dim is not None else "?" for dim in sig.shape]
            raise LayoutError(f"{tensor.name}: shape {list(shape)}, model wants {wanted}")
        if any(dim <= 0 for dim in shape):
            raise LayoutError(f"{tensor.name}: shape {list(shape)} has an empty axis")
        dtype = DTYPES[tensor.dtype]
        want = int(np.prod(shape)) * dtype.itemsize
        if len(tensor.data) != want:
            raise LayoutError(f"{tensor.name}: expected {want} bytes for shape {list(shape)}, got {len(tensor.data)}")
        arrays[tensor.name] = np.frombuffer(tensor.data, dtype).reshape(shape)
    missing = [name for name in expected if name not in arrays]
    if missing:
        raise LayoutError(f"{missing[0]}: missing input tensor")
    batch_sizes = {array.shape[0] for array in arrays.values()}
    if len(batch_sizes) != 1:
        raise LayoutError(f"{next(iter(arrays))}: inputs disagree on the batch axis {sorted(batch_sizes)}")
    return arrays


def batch_key(arrays: dict[str, np.ndarray]) -> BatchKey:
    """Frames can share one model run when all their tensors agree beyond axis 0."""
    return tuple(sorted((name, array.shape[1:]) for name, array in arrays.items()))


def encode_tensor(name: str, array: np.ndarray) -> pb.Tensor:
    array = np.ascontiguousarray(array)
    code = _DTYPE_CODES.get(array.dtype.newbyteorder("<"), pb.DTYPE_UNSPECIFIED)
    data = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
    return pb.Tensor(name=name, dtype=code, shape=list(array.shape), data=data)
