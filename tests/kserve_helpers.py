"""Driving lipstream's KServe v2 service with tritonclient, as a KServe/Triton user would.

tritonclient's client is synchronous: tests call it in a thread (`asyncio.to_thread`) so the
server, on the test's event loop, keeps serving.
"""

from __future__ import annotations

import queue
from collections.abc import Sequence

import numpy as np
import tritonclient.grpc as triton

from protos import kserve


def infer_input(name: str, array: np.ndarray, datatype: str | None = None) -> triton.InferInput:
    tensor = triton.InferInput(name, list(array.shape), datatype or triton.np_to_triton_dtype(array.dtype))
    tensor.set_data_from_numpy(array)
    return tensor


def compact_inputs(crop_i420: bytes, size: int, audio: np.ndarray) -> list[triton.InferInput]:
    """One frame for a model's `-compact` variant: the I420 crop as uint8 rows, the float16 audio window flat."""
    crop = np.frombuffer(crop_i420, np.uint8).reshape(1, *kserve.i420_shape(size))
    return [infer_input(kserve.CROP, crop), infer_input(kserve.AUDIO, audio.astype(np.float16).reshape(1, -1))]


class StreamResults:
    """A `start_stream` callback that keeps (result, error) pairs in arrival order."""

    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[triton.InferResult | None, Exception | None]] = queue.Queue()

    def __call__(self, result: triton.InferResult | None, error: Exception | None) -> None:
        self._queue.put((result, error))

    def take(self, count: int, timeout_s: float = 30.0) -> Sequence[tuple[triton.InferResult | None, Exception | None]]:
        return [self._queue.get(timeout=timeout_s) for _ in range(count)]
