"""parametric-mouth, the embedded default: a hand-built graph, not a trained network.

It opens the reference crop's mouth by the speech energy of the window's centre frame
(component ENERGY_COMPONENT of its vector): the lower lip and jaw are warped down and a
dark interior appears, so the demo visibly talks and the A/V offset is measurable.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from inference_service.models.graph import Graph
from lipstream import contract

LOOKAHEAD_FRAMES = contract.BUILTIN_LOOKAHEAD_FRAMES["parametric-mouth"]

SILENCE_ENERGY = -2.5
FULL_OPEN_SPAN = 4.0

# Geometry, in the model crop.
JAW_DROP_PX = 40.0  # lower lip and jaw displacement at full opening
JAW_FULL_HALF_WIDTH = 55.0  # columns this close to the mouth centre move fully ...
JAW_ZERO_HALF_WIDTH = 135.0  # ... falling to no movement this far out (inside the crop)
JAW_RISE_PX = 72.0  # rows below the mouth line over which the drop ramps up (slope < 1: no fold)
JAW_ZERO_ROW = 310.0  # the drop falls back to 0 by this row, above the crop's bottom edge
INTERIOR_HALF_WIDTH = 55.0
INTERIOR_MAX_HEIGHT_PX = 36.0  # height of the dark interior at full opening
INTERIOR_EDGE_PX = 6.0
INTERIOR_MAX_ALPHA = 0.85
INTERIOR_BGR = (0.05, 0.04, 0.16)  # dark red


def opening(energy: np.ndarray) -> np.ndarray:
    """How far the model opens the mouth (0 closed, 1 full) for a frame's speech energy: the graph's curve."""
    return np.clip((np.asarray(energy) - SILENCE_ENERGY) / FULL_OPEN_SPAN, 0.0, 1.0)


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _band_rows() -> np.ndarray:
    """Crop rows from the mouth line down: the only rows the effect touches."""
    return np.arange(contract.MOUTH_CENTRE_IN_CROP[1], contract.MODEL_CROP, dtype=np.float64)


def _jaw_grid_fields() -> tuple[np.ndarray, np.ndarray]:
    """(identity, offset at full opening) as GridSample grids [1,band,W,2] (align_corners=0).

    Rows below the mouth line sample from above, so the lower lip and jaw move down; the
    drop fades to 0 at the mouth line, the band's bottom and its sides.
    """
    cx, cy = contract.MOUTH_CENTRE_IN_CROP
    rows, cols = _band_rows(), np.arange(contract.MODEL_CROP, dtype=np.float64)
    height = len(rows)
    across = _smoothstep((JAW_ZERO_HALF_WIDTH - np.abs(cols - cx)) / (JAW_ZERO_HALF_WIDTH - JAW_FULL_HALF_WIDTH))
    rise = _smoothstep((rows - cy) / JAW_RISE_PX)
    fall = _smoothstep((JAW_ZERO_ROW - rows) / (JAW_ZERO_ROW - cy - JAW_RISE_PX))
    drop_px = JAW_DROP_PX * np.outer(rise * fall, across)

    identity = np.empty((1, height, contract.MODEL_CROP, 2))
    identity[0, :, :, 0] = ((2.0 * cols + 1.0) / contract.MODEL_CROP - 1.0)[None, :]
    identity[0, :, :, 1] = ((2.0 * np.arange(height) + 1.0) / height - 1.0)[:, None]
    offset = np.zeros_like(identity)
    offset[0, :, :, 1] = -2.0 * drop_px / height  # normalised coordinates span 2 over the band
    return identity, offset


def _slice(g: Graph, x: str, starts: Sequence[int], ends: Sequence[int], axes: Sequence[int]) -> str:
    return g.op("Slice", [x, g.const(starts, np.int64), g.const(ends, np.int64), g.const(axes, np.int64)])


def parametric_mouth() -> Graph:
    g = Graph()
    cx, cy = contract.MOUTH_CENTRE_IN_CROP
    vectors = g.const([-1, contract.WINDOW_FRAMES, contract.VECTOR_SIZE], np.int64)
    window = g.op("Reshape", [contract.AUDIO_INPUT, vectors])
    centre = [contract.CENTRE_FRAME, contract.ENERGY_COMPONENT]
    energy = _slice(g, window, centre, [index + 1 for index in centre], [1, 2])
    energy = g.op("Reshape", [energy, g.const([-1, 1, 1, 1], np.int64)])
    scaled = g.op("Mul", [energy, g.const(1.0 / FULL_OPEN_SPAN)])
    scaled = g.op("Add", [scaled, g.const(-SILENCE_ENERGY / FULL_OPEN_SPAN)])
    opening = g.op("Clip", [scaled, g.const(0.0), g.const(1.0)])  # [B,1,1,1]

    above = _slice(g, contract.IMAGE_INPUT, [0, 0], [3, cy], [1, 2])
    band = _slice(g, contract.IMAGE_INPUT, [0, cy], [3, contract.MODEL_CROP], [1, 2])
    identity, offset = _jaw_grid_fields()
    grid = g.op("Add", [g.const(identity), g.op("Mul", [opening, g.const(offset)])])
    warped = g.op("GridSample", [band, grid], mode="bilinear", padding_mode="border", align_corners=0)

    # Dark interior: an ellipse whose top stays on the lip line and which opens downward.
    # In units of the soft edge, inside = half_height*shape(x) - |y - (mouth_y + half_height)| > 0;
    # a closed mouth (half_height 0) gives <= 0 everywhere, so nothing is darkened.
    cols = np.arange(contract.MODEL_CROP, dtype=np.float64)
    shape_x = np.sqrt(np.clip(1.0 - ((cols - cx) / INTERIOR_HALF_WIDTH) ** 2, 0.0, None))
    rows = (_band_rows() - cy) / INTERIOR_EDGE_PX
    half_height = g.op("Mul", [opening, g.const(INTERIOR_MAX_HEIGHT_PX / 2.0 / INTERIOR_EDGE_PX)])
    reach = g.op("Mul", [half_height, g.const(shape_x.reshape(1, 1, 1, -1))])
    distance = g.op("Abs", [g.op("Sub", [g.const(rows.reshape(1, 1, -1, 1)), half_height])])
    alpha = g.op("Clip", [g.op("Sub", [reach, distance]), g.const(0.0), g.const(INTERIOR_MAX_ALPHA)])

    towards_dark = g.op("Mul", [g.op("Sub", [g.const(np.reshape(INTERIOR_BGR, (1, 3, 1, 1))), warped]), alpha])
    mouth = g.op("Add", [warped, towards_dark])
    g.op("Clip", [g.op("Concat", [above, mouth], axis=2), g.const(0.0), g.const(1.0)], output=contract.OUTPUT)
    return g
