"""The bundled avatar `default`, generated locally so `lipstream serve` needs no download.

Source: skimage.data.astronaut(), a public-domain NASA portrait (512x512). Gentle
synthetic head motion makes the idle loop look alive; every motion curve has zero
velocity at both ends, so the ping-pong idle loop turns around smoothly. Crop
boxes come from the same detection pipeline as `lipstream avatar prepare`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
from skimage import data

from lipstream.timebase import VIDEO_FPS
from media_server.avatars.catalogue import BUNDLED_AVATAR, cached_avatars
from media_server.avatars.format import MANIFEST
from media_server.avatars.prepare import AvatarExistsError, build_avatar

log = logging.getLogger(__name__)

N_FRAMES = 50
# Motion amplitudes: small enough to stay natural, large enough to read as alive.
SWAY_DEGREES = 1.5
SWAY_PX = 2.0
NOD_PX = 3.0
ZOOM = 0.015
# Rotation pivot at the neck, below the face (astronaut image pixels).
PIVOT = (224.0, 200.0)


def _frames() -> Iterator[np.ndarray]:
    portrait = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    height, width = portrait.shape[:2]
    for t in np.linspace(0.0, 1.0, N_FRAMES):
        ease = (1.0 - np.cos(np.pi * t)) / 2.0 - 0.5  # -0.5 -> 0.5
        bump = np.sin(np.pi * t) ** 2  # 0 -> 1 -> 0
        breathe = np.sin(2.0 * np.pi * t) ** 2  # 0 -> 1 -> 0 -> 1 -> 0
        matrix = cv2.getRotationMatrix2D(PIVOT, 2.0 * SWAY_DEGREES * ease, 1.0 + ZOOM * breathe)
        matrix[:, 2] += (2.0 * SWAY_PX * ease, NOD_PX * bump)
        yield cv2.warpAffine(
            portrait, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
        )


def ensure_bundled_avatar(target: Path | None = None) -> Path:
    """The bundled avatar's directory (default: where the catalogue looks for it), built if it is not there."""
    target = target if target is not None else cached_avatars() / BUNDLED_AVATAR
    if (target / MANIFEST).is_file():
        return target
    log.info("building the bundled avatar in %s", target)
    try:
        return build_avatar(_frames(), target, BUNDLED_AVATAR, VIDEO_FPS, "the bundled astronaut portrait")
    except AvatarExistsError:
        return target  # another process built it first
