"""Model crops out of, and mouth regions back into, I420 frames.

Everything works on the three I420 planes directly (chroma at half the box
size), so no frame is ever colour-converted on the edge. The model sees the box
resized to `crop_size` less a margin (SyncTalk_2D's 328 -> inner 320) and
returns the same inner crop.

Paste-back adds the model's *change* (output minus the input crop), resized to
the box and feathered, to the original pixels. By linearity this equals putting
the output into the 328 crop, resizing it to the box and blending, except that
the background keeps the detail a 328 round trip would blur: an unchanged crop
is an exact no-op, and only the box region is ever touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    from media_server.frame_store import LoadedAvatar

# Feather ramp width as a fraction of the box side: wide enough to hide the seam,
# narrow enough to keep the mouth region (centre of the box) fully replaced.
FEATHER_FRACTION = 0.1

Box = tuple[int, int, int, int]
Planes = tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class CropGeometry:
    """The model's crop: the box resized to `size`, the model sees [margin:size-margin]."""

    size: int = 328
    margin: int = 4

    @property
    def inner(self) -> int:
        return self.size - 2 * self.margin

    @property
    def wire_bytes(self) -> int:
        """Bytes of one I420 crop: Y inner², U and V (inner/2)²."""
        return self.inner * self.inner * 3 // 2


def i420_planes(frame: np.ndarray, width: int, height: int) -> Planes:
    """Y, U, V views of one contiguous (H*3//2, W) I420 array."""
    flat = frame.reshape(-1)
    y_size, c_size = width * height, (width // 2) * (height // 2)
    return (
        flat[:y_size].reshape(height, width),
        flat[y_size : y_size + c_size].reshape(height // 2, width // 2),
        flat[y_size + c_size : y_size + 2 * c_size].reshape(height // 2, width // 2),
    )


def even_box(rect: np.ndarray | list[int], width: int, height: int) -> Box:
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


@lru_cache(maxsize=64)
def feather_mask(side: int) -> np.ndarray:
    """(side, side) float32 alpha: 1 inside, a smoothstep ramp down to 0 at the border."""
    ramp = max(1.0, FEATHER_FRACTION * side)
    distance = np.minimum(np.arange(side) + 0.5, side - np.arange(side) - 0.5)
    t = np.clip(distance / ramp, 0.0, 1.0)
    profile = (t * t * (3.0 - 2.0 * t)).astype(np.float32)
    mask = np.outer(profile, profile)
    mask.setflags(write=False)
    return mask


def _crop_planes(crop: np.ndarray, geometry: CropGeometry) -> Planes:
    return i420_planes(crop, geometry.inner, geometry.inner)


def composite(avatar: LoadedAvatar, frame_index: int, mouth_i420: np.ndarray) -> np.ndarray:
    """Frame `frame_index` with the model's output crop blended in; a new I420 array."""
    geometry = avatar.geometry
    mouth = np.asarray(mouth_i420)
    if mouth.dtype != np.uint8 or mouth.size != geometry.wire_bytes:
        raise ValueError(
            f"mouth crop must be {geometry.wire_bytes} uint8 values (I420 {geometry.inner}x{geometry.inner}), "
            f"got {mouth.size} {mouth.dtype}"
        )
    if not 0 <= frame_index < avatar.n_frames:
        raise IndexError(f"frame {frame_index} is outside 0..{avatar.n_frames - 1}")
    x0, y0, x1, y1 = avatar.rects[frame_index]
    out = avatar.frames[frame_index].copy()
    planes = zip(
        i420_planes(out, avatar.width, avatar.height),
        _crop_planes(mouth, geometry),
        _crop_planes(avatar.crops_i420[frame_index], geometry),
        (1, 2, 2),
        strict=True,
    )
    for target, predicted, source, scale in planes:
        side, margin = (x1 - x0) // scale, geometry.margin // scale
        change = cv2.subtract(predicted, source, dtype=cv2.CV_32F)
        change = cv2.copyMakeBorder(change, margin, margin, margin, margin, cv2.BORDER_CONSTANT, value=0)
        change = cv2.resize(change, (side, side), interpolation=cv2.INTER_LINEAR)
        region = target[y0 // scale : y1 // scale, x0 // scale : x1 // scale]
        region[...] = cv2.add(region, change * feather_mask(side), dtype=cv2.CV_8U)
    return out
