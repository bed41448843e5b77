"""Where the model's crop sits in a frame: square boxes on even pixels, and the crop cut from one.

The model sees the box resized to `size` less a margin (SyncTalk_2D's 328 -> inner 320,
`lipstream.contract`). Crops are cut from the I420 planes directly (chroma at half the box
size), so no frame is ever colour-converted on the edge.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from lipstream import contract
from media_server.avatars.i420 import i420_planes

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in frame pixels


@dataclass(frozen=True)
class CropGeometry:
    """The model's crop: the box resized to `size`, the model sees [margin:size-margin]."""

    size: int = contract.CROP_BOX
    margin: int = contract.CROP_MARGIN

    @property
    def inner(self) -> int:
        return self.size - 2 * self.margin

    @property
    def wire_bytes(self) -> int:
        """Bytes of one I420 crop: Y inner², U and V (inner/2)²."""
        return self.inner * self.inner * 3 // 2


def even_box(rect: np.ndarray | list[int] | tuple[int, ...], width: int, height: int) -> Box:
    """A square box on even coordinates inside the frame, so chroma planes align with luma."""
    x0, y0, x1, y1 = (int(v) for v in rect)
    side = max(2, 2 * round((x1 - x0 + y1 - y0) / 4))
    side = min(side, width - width % 2, height - height % 2)
    x0 = min(max(0, 2 * round(x0 / 2)), width - side)
    y0 = min(max(0, 2 * round(y0 / 2)), height - side)
    return x0, y0, x0 + side, y0 + side


def make_crop(frame_i420: np.ndarray, box: Box, width: int, height: int, geometry: CropGeometry) -> np.ndarray:
    """The model input for one frame: the inner crop as one flat I420 array (the wire format)."""
    x0, y0, x1, y1 = box
    out = np.empty(geometry.wire_bytes, dtype=np.uint8)
    offset = 0
    for plane, scale in zip(i420_planes(frame_i420, width, height), (1, 2, 2), strict=True):
        size, margin = geometry.size // scale, geometry.margin // scale
        region = plane[y0 // scale : y1 // scale, x0 // scale : x1 // scale]
        inner = cv2.resize(region, (size, size), interpolation=cv2.INTER_LINEAR)[margin:-margin, margin:-margin]
        out[offset : offset + inner.size] = inner.reshape(-1)
        offset += inner.size
    return out
