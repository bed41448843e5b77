"""How far a received frame's mouth is from the idle frame the server would show: open lips, measured."""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

from media_server.avatars.store import LoadedAvatar


class _MouthArea(NamedTuple):
    """One idle frame's mouth area: where it lies in the meter's window, and its idle pixels."""

    rows: slice
    cols: slice
    idle: np.ndarray


class MouthMeter:
    """Mean |received luma - the idle frame the server would show| over the mouth of frame n.

    The mouth area is the lower middle of the crop box: rows 50-85 %, columns 30-70 % of its side.
    A viewer need keep only `crop(luma)`, the window around every idle frame's mouth area (a few
    kB a frame), which is what a long benchmark run can afford for every frame of every client.
    """

    def __init__(self, avatar: LoadedAvatar) -> None:
        boxes = []
        for index in avatar.idle_sequence():
            x0, y0, x1, _ = (int(v) for v in avatar.rects[index])
            side = x1 - x0
            boxes.append((y0 + side // 2, y0 + int(0.85 * side), x0 + int(0.3 * side), x0 + int(0.7 * side)))
        top, left = min(b[0] for b in boxes), min(b[2] for b in boxes)
        self._window = (slice(top, max(b[1] for b in boxes)), slice(left, max(b[3] for b in boxes)))
        self._areas = [
            _MouthArea(
                slice(r0 - top, r1 - top),
                slice(c0 - left, c1 - left),
                np.ascontiguousarray(avatar.frames[index][r0:r1, c0:c1]),
            )
            for index, (r0, r1, c0, c1) in zip(avatar.idle_sequence(), boxes, strict=True)
        ]

    def crop(self, luma: np.ndarray) -> np.ndarray:
        """The part of a whole luma plane the meter reads (a copy: the plane may be a decoder's buffer)."""
        return luma[self._window].copy()

    def __call__(self, frame: int, crop: np.ndarray) -> float:
        """Motion in session frame `frame`, whose `crop(luma)` is given: 0 when it shows the idle mouth."""
        area = self._areas[frame % len(self._areas)]
        return float(cv2.absdiff(np.ascontiguousarray(crop[area.rows, area.cols]), area.idle).mean())
