"""Host staging buffers for copies to a GPU: page-locked when a CUDA PyTorch is there to allocate them.

Copies from pageable memory go through a driver bounce buffer; page-locked (pinned) memory is
copied by DMA, asynchronously. onnxruntime's Python API cannot allocate pinned memory, so the
buffers come from torch when it is loaded with CUDA, and are plain numpy arrays otherwise
(`pinned` says which).
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np


def cuda_torch() -> Any | None:
    """The torch module when it is already imported and sees a GPU (never imports it: that costs seconds)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        return torch
    return None


class HostBuffers:
    """One reusable array per (name, shape, dtype); `pinned` is whether they are page-locked."""

    def __init__(self, want_pinned: bool) -> None:
        self._torch = cuda_torch() if want_pinned else None
        self.pinned = self._torch is not None
        self._arrays: dict[tuple[str, tuple[int, ...], str], np.ndarray] = {}
        self._keep: list[Any] = []  # the torch tensors that own pinned arrays

    def get(self, name: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        key = (name, tuple(shape), np.dtype(dtype).str)
        array = self._arrays.get(key)
        if array is None:
            if self._torch is not None:
                tensor = self._torch.from_numpy(np.empty(0, dtype)).new_empty(shape).pin_memory()
                self._keep.append(tensor)
                array = tensor.numpy()
            else:
                array = np.empty(shape, dtype)
            self._arrays[key] = array
        return array

    def stage(self, name: str, value: np.ndarray) -> np.ndarray:
        """`value` copied into its reused buffer."""
        array = self.get(name, value.shape, value.dtype)
        np.copyto(array, value)
        return array
