"""I420 frames, the layout the encoder takes: plane views and the only colour conversions.

Frames are stored as one contiguous (H*3//2, W) uint8 array: Y, then U and V at half size.
"""

from __future__ import annotations

import cv2
import numpy as np

Planes = tuple[np.ndarray, np.ndarray, np.ndarray]


def i420_planes(frame: np.ndarray, width: int, height: int) -> Planes:
    """Y, U, V views of one contiguous (H*3//2, W) I420 array."""
    flat = frame.reshape(-1)
    y_size, c_size = width * height, (width // 2) * (height // 2)
    return (
        flat[:y_size].reshape(height, width),
        flat[y_size : y_size + c_size].reshape(height // 2, width // 2),
        flat[y_size + c_size : y_size + 2 * c_size].reshape(height // 2, width // 2),
    )


def even_size(frame: np.ndarray) -> np.ndarray:
    """A view without the last row/column when odd: I420 needs even dimensions."""
    h, w = frame.shape[:2]
    return frame[: h - h % 2, : w - w % 2]


def bgr_to_i420(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(even_size(frame)), cv2.COLOR_BGR2YUV_I420)


def i420_to_bgr(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(frame, cv2.COLOR_YUV2BGR_I420)
