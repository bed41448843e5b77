"""Model crops and paste-back on I420 frames."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from media_server.avatars.bundled import ensure_bundled_avatar
from media_server.avatars.format import AvatarAssets, AvatarManifest
from media_server.avatars.geometry import CropGeometry, make_crop
from media_server.avatars.i420 import bgr_to_i420, i420_planes
from media_server.avatars.store import FrameStore, LoadedAvatar, build_loaded_avatar
from media_server.video.compositor import composite, feather_mask

WIRE = 320 * 320 * 3 // 2


def smooth_frame(width: int, height: int) -> np.ndarray:
    """A BGR frame of slow colour gradients: resizing it loses nothing worth measuring."""
    x, y = np.meshgrid(np.linspace(0, 1, width), np.linspace(0, 1, height))
    bgr = np.stack([60 + 100 * x, 80 + 90 * y, 120 + 60 * x * y], axis=-1)
    return bgr.astype(np.uint8)


def textured_frame(width: int, height: int, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return cv2.GaussianBlur(noise, (0, 0), 1.5)


def memory_avatar(frames_bgr: list[np.ndarray], rects: list[list[int]]) -> LoadedAvatar:
    assets = AvatarAssets(
        directory=Path("in-memory"),
        manifest=AvatarManifest(name="test"),
        frames_i420=np.stack([bgr_to_i420(f) for f in frames_bgr]),
        rects=np.array(rects, dtype=np.int64),
        idle_frames=tuple(range(len(frames_bgr))),
    )
    return build_loaded_avatar(assets)


def constant_mouth(y: int, u: int, v: int) -> np.ndarray:
    mouth = np.empty(WIRE, np.uint8)
    mouth[: 320 * 320], mouth[320 * 320 : 320 * 320 + 160 * 160], mouth[320 * 320 + 160 * 160 :] = y, u, v
    return mouth


def planes(avatar: LoadedAvatar, frame: np.ndarray) -> tuple[np.ndarray, ...]:
    return tuple(p.astype(np.int32) for p in i420_planes(frame, avatar.width, avatar.height))


def outside_box(avatar: LoadedAvatar, index: int, scale: int) -> np.ndarray:
    x0, y0, x1, y1 = avatar.rects[index] // scale
    mask = np.ones((avatar.height // scale, avatar.width // scale), bool)
    mask[y0:y1, x0:x1] = False
    return mask


@pytest.fixture(scope="module")
def default_avatar() -> LoadedAvatar:
    return FrameStore().get(ensure_bundled_avatar())


@pytest.mark.parametrize("index", [0, 17, 49])
def test_identity_model_leaves_the_frame_unchanged(default_avatar: LoadedAvatar, index: int) -> None:
    crop = default_avatar.crops_i420[index]
    for mouth in (crop, crop.reshape(480, 320)):
        out = composite(default_avatar, index, mouth)
        assert out.shape == default_avatar.frames[index].shape and out.dtype == np.uint8
        diff = np.abs(out.astype(np.int16) - default_avatar.frames[index])
        assert diff.max() <= 2


def test_composite_returns_a_new_frame(default_avatar: LoadedAvatar) -> None:
    before = default_avatar.frames[3].copy()
    out = composite(default_avatar, 3, constant_mouth(20, 128, 128))
    assert not np.shares_memory(out, default_avatar.frames)
    out[:] = 0  # the caller owns it
    assert np.array_equal(default_avatar.frames[3], before)


def test_constant_mouth_fills_the_box_centre_and_nothing_outside(default_avatar: LoadedAvatar) -> None:
    index, colour = 10, (30, 100, 170)
    out = composite(default_avatar, index, constant_mouth(*colour))
    x0, y0, x1, y1 = default_avatar.rects[index]
    new_planes, old_planes = planes(default_avatar, out), planes(default_avatar, default_avatar.frames[index])
    for scale, new, old, value in zip((1, 2, 2), new_planes, old_planes, colour, strict=True):
        outside = outside_box(default_avatar, index, scale)
        assert np.array_equal(new[outside], old[outside])
        side = (x1 - x0) // scale
        cx, cy = (x0 // scale) + side // 2, (y0 // scale) + side // 2
        centre = new[cy - side // 8 : cy + side // 8, cx - side // 8 : cx + side // 8]
        # The model's change replaces the background: what is left is the crop round trip's fine detail.
        assert abs(centre.mean() - value) < 4


def test_composite_matches_the_contract_paste_back_on_smooth_frames() -> None:
    """Output into the 328 crop at [4:324], resized to the box, feathered into the frame."""
    avatar = memory_avatar([smooth_frame(320, 240)], [[60, 30, 240, 210]])
    rng = np.random.default_rng(1)
    mouth_y = cv2.GaussianBlur(rng.integers(0, 256, (320, 320), dtype=np.uint8), (0, 0), 4)
    mouth = avatar.crops_i420[0].copy()
    mouth[: 320 * 320] = mouth_y.reshape(-1)
    out_y = i420_planes(composite(avatar, 0, mouth), 320, 240)[0].astype(np.float32)

    background = i420_planes(avatar.frames[0], 320, 240)[0]
    crop_328 = cv2.resize(background[30:210, 60:240], (328, 328), interpolation=cv2.INTER_LINEAR)
    crop_328[4:324, 4:324] = mouth_y
    pasted = cv2.resize(crop_328, (180, 180), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    alpha = feather_mask(180)
    reference = background.astype(np.float32)
    reference[30:210, 60:240] = alpha * pasted + (1 - alpha) * reference[30:210, 60:240]
    assert np.abs(out_y - reference).max() <= 3


def test_seam_is_feathered_not_hard() -> None:
    avatar = memory_avatar([smooth_frame(400, 300)], [[100, 50, 300, 250]])
    out = composite(avatar, 0, constant_mouth(235, 128, 128))
    new_y, old_y = (i420_planes(f, 400, 300)[0].astype(np.int32) for f in (out, avatar.frames[0]))
    row = 150  # crosses the left border of the box at x = 100
    change = (new_y - old_y)[row, 80:200]
    contrast = np.abs(change).max()
    assert contrast > 100 and abs(new_y[row, 200] - 235) <= 2  # the colour really arrived
    assert change[0] == 0
    assert np.abs(np.diff(change)).max() <= 0.1 * contrast


def test_boxes_touching_the_frame_edges_work() -> None:
    width, height = 256, 192
    rects = [[0, 92, 100, 192], [156, 0, 256, 100]]
    frame = textured_frame(width, height)
    avatar = memory_avatar([frame, frame], rects)
    for index, (x0, y0, x1, y1) in enumerate(rects):
        identity = composite(avatar, index, avatar.crops_i420[index])
        assert np.abs(identity.astype(np.int16) - avatar.frames[index]).max() <= 2
        out = composite(avatar, index, constant_mouth(250, 128, 128))
        luma = i420_planes(out, width, height)[0]
        assert luma[(y0 + y1) // 2, (x0 + x1) // 2] >= 240
        outside = outside_box(avatar, index, 1)
        assert np.array_equal(luma[outside], i420_planes(avatar.frames[index], width, height)[0][outside])


def test_make_crop_maps_the_box_onto_the_model_crop() -> None:
    """A marker at the box point that maps to (160, 176) of the 320 crop appears there, in luma and chroma."""
    width, height = 320, 240
    frame = np.full((height, width, 3), 90, np.uint8)
    box = (40, 20, 204, 184)  # side 164: the 328 crop is the box at 2x
    cv2.rectangle(frame, (122 - 4, 110 - 4), (122 + 3, 110 + 3), (0, 0, 255), -1)  # red square centred on (122, 110)
    crop = make_crop(bgr_to_i420(frame), box, width, height, CropGeometry())
    y, _, v = (p.astype(np.float32) for p in i420_planes(crop, 320, 320))
    for plane, centre, scale in ((y, (160, 176), 1), (v, (80, 88), 2)):
        weight = np.abs(plane - np.median(plane))
        ys, xs = np.indices(plane.shape)
        found = ((weight * xs).sum() / weight.sum(), (weight * ys).sum() / weight.sum())
        assert np.allclose(found, centre, atol=1.5 / scale), found


def test_bad_mouth_crop_is_rejected(default_avatar: LoadedAvatar) -> None:
    with pytest.raises(ValueError, match="153600 uint8"):
        composite(default_avatar, 0, np.zeros(1000, np.uint8))
    with pytest.raises(ValueError, match="float32"):
        composite(default_avatar, 0, np.zeros(WIRE, np.float32))
    with pytest.raises(IndexError, match="frame 50"):
        composite(default_avatar, 50, default_avatar.crops_i420[0])
