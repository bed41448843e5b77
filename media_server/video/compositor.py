"""Mouth regions back into I420 frames.

Everything works on the three I420 planes directly (chroma at half the box
size), so no frame is ever colour-converted on the edge. The model returns the
inner crop it was given (`media_server.avatars.geometry`), changed around the mouth.

Paste-back adds the model's *change* (output minus the input crop), resized to
the box and feathered, to the original pixels. By linearity this equals putting
the output into the 328 crop, resizing it to the box and blending, except that
the background keeps the detail a 328 round trip would blur: an unchanged crop
is an exact no-op, and only the box region is ever touched.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from media_server.avatars.geometry import CropGeometry
from media_server.avatars.i420 import Planes, i420_planes
from media_server.avatars.store import LoadedAvatar

# Feather ramp width as a fraction of the box side: wide enough to hide the seam,
# narrow enough to keep the mouth region (centre of the box) fully replaced.
FEATHER_FRACTION = 0.1


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
