"""The on-disk avatar format: one directory per avatar, read and written here only.

Layout: `avatar.yaml` (name, fps, model, crop_size, optional `video` and
`idle_frames`), the frames (`frames/*.jpg|png` or the video named in the yaml)
and `crop_rects.json` (one square `[xmin, ymin, xmax, ymax]` per frame, in
full-frame pixels). Loading validates everything once so that the per-frame path
never has to, and hands frames over as I420, the encoder's own layout.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np
import yaml
from pydantic import Field, ValidationError

from lipstream import contract
from lipstream.config import StrictModel
from lipstream.timebase import VIDEO_FPS
from media_server.avatars.i420 import bgr_to_i420

MANIFEST = "avatar.yaml"
RECTS = "crop_rects.json"
FRAMES_DIR = "frames"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
JPEG_QUALITY = 95
# Boxes within this many pixels of square count as square (detector boxes are rounded).
SQUARE_TOLERANCE_PX = 1
MIN_BOX_SIDE_PX = 8


class AvatarError(ValueError):
    """An avatar directory or input that cannot be used; the message says what and where."""


class AvatarManifest(StrictModel):
    """`avatar.yaml`."""

    name: str = Field(min_length=1)
    fps: int = Field(default=VIDEO_FPS, gt=0, le=120)
    model: str = Field(default="parametric-mouth", min_length=1)
    # Side of the square the box is resized to; the model sees it less a 4 px margin.
    crop_size: int = Field(default=contract.CROP_BOX, ge=16, multiple_of=4)
    video: str | None = None
    idle_frames: list[int] | None = None


@dataclass(frozen=True)
class AvatarAssets:
    """A validated avatar: frames as I420 (H*3//2, W) uint8, one rect per frame."""

    directory: Path
    manifest: AvatarManifest
    frames_i420: np.ndarray  # (n, H*3//2, W) uint8
    rects: np.ndarray  # (n, 4) int64, validated against the decoded frame size
    idle_frames: tuple[int, ...]

    @property
    def width(self) -> int:
        return int(self.frames_i420.shape[2])

    @property
    def height(self) -> int:
        return int(self.frames_i420.shape[1]) * 2 // 3


def read_manifest(directory: Path) -> AvatarManifest:
    if not directory.is_dir():
        raise AvatarError(f"avatar directory {directory} does not exist")
    path = directory / MANIFEST
    if not path.is_file():
        raise AvatarError(f"{path} is missing")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise AvatarError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise AvatarError(f"{path} must be a mapping with at least 'name'")
    try:
        return AvatarManifest.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}" for err in exc.errors()
        )
        raise AvatarError(f"{path}: {problems}") from exc


def read_rects(directory: Path) -> np.ndarray:
    """Rects as an (n, 4) int array, each checked to be a non-degenerate square."""
    path = directory / RECTS
    if not path.is_file():
        raise AvatarError(f"{path} is missing")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        rects = np.asarray(raw, dtype=np.float64)
    except (json.JSONDecodeError, ValueError, TypeError) as exc:
        raise AvatarError(f"{path} must be a JSON list of [xmin, ymin, xmax, ymax]: {exc}") from exc
    if rects.ndim != 2 or rects.shape[1] != 4 or len(rects) == 0:
        raise AvatarError(f"{path} must be a non-empty JSON list of [xmin, ymin, xmax, ymax]")
    rects = np.rint(rects).astype(np.int64)
    sides = rects[:, 2:] - rects[:, :2]
    for index, (w, h) in enumerate(sides):
        if w < MIN_BOX_SIDE_PX or h < MIN_BOX_SIDE_PX:
            raise AvatarError(f"{path}: rect {index} {rects[index].tolist()} is degenerate")
        if abs(int(w) - int(h)) > SQUARE_TOLERANCE_PX:
            raise AvatarError(f"{path}: rect {index} {rects[index].tolist()} is not square ({w}x{h})")
    return rects


def _image_files(directory: Path) -> list[Path]:
    frames_dir = directory / FRAMES_DIR
    files = sorted(p for p in frames_dir.glob("*") if p.suffix.lower() in IMAGE_SUFFIXES) if frames_dir.is_dir() else []
    if not files:
        raise AvatarError(f"{directory} has no frames: expected {FRAMES_DIR}/*.jpg|png or 'video:' in {MANIFEST}")
    return files


def source_files(directory: Path, manifest: AvatarManifest) -> list[Path]:
    """Every file an avatar is decoded from: its manifest, its rects, its frames or video."""
    frames = [directory / manifest.video] if manifest.video else _image_files(directory)
    return [directory / MANIFEST, directory / RECTS, *frames]


def _decode_images(files: list[Path]) -> Iterator[tuple[str, np.ndarray]]:
    for path in files:
        frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if frame is None:
            raise AvatarError(f"frame {path} cannot be read as an image")
        yield str(path), frame


def decode_video(path: Path) -> Iterator[tuple[float | None, np.ndarray]]:
    """(time in seconds, BGR frame) for each frame of any FFmpeg-readable video."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise AvatarError(f"{path} has no video stream")
            for frame in container.decode(video=0):
                yield frame.time, frame.to_ndarray(format="bgr24")
    except av.FFmpegError as exc:
        raise AvatarError(f"video {path} cannot be decoded: {exc}") from exc


def _decode_video_frames(path: Path) -> Iterator[tuple[str, np.ndarray]]:
    if not path.is_file():
        raise AvatarError(f"video {path} named in {MANIFEST} is missing")
    for index, (_, frame) in enumerate(decode_video(path)):
        yield f"{path} frame {index}", frame


def _check_rects_inside(rects: np.ndarray, width: int, height: int, where: Path) -> None:
    outside = (rects[:, 0] < 0) | (rects[:, 1] < 0) | (rects[:, 2] > width) | (rects[:, 3] > height)
    if outside.any():
        index = int(np.flatnonzero(outside)[0])
        raise AvatarError(
            f"{where / RECTS}: rect {index} {rects[index].tolist()} is outside the {width}x{height} frame"
        )


def idle_frames_of(manifest: AvatarManifest, n_frames: int, directory: Path) -> tuple[int, ...]:
    if manifest.idle_frames is None:
        return tuple(range(n_frames))
    if not manifest.idle_frames:
        raise AvatarError(f"{directory / MANIFEST}: idle_frames must not be empty")
    bad = [i for i in manifest.idle_frames if not 0 <= i < n_frames]
    if bad:
        raise AvatarError(f"{directory / MANIFEST}: idle_frames {bad} are not frame indices (0..{n_frames - 1})")
    return tuple(manifest.idle_frames)


def load_avatar(directory: Path) -> AvatarAssets:
    """Decode and validate an avatar directory; frames are converted to I420 as they decode."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    rects = read_rects(directory)
    if manifest.video:
        decoded = _decode_video_frames(directory / manifest.video)
    else:
        decoded = _decode_images(_image_files(directory))
    frames: list[np.ndarray] = []
    size: tuple[int, int] | None = None
    for label, frame in decoded:
        if size is None:
            size = frame.shape[:2]
            if min(size) < MIN_BOX_SIDE_PX:
                raise AvatarError(f"frame {label} is only {size[1]}x{size[0]} pixels")
        elif frame.shape[:2] != size:
            raise AvatarError(
                f"frame {label} is {frame.shape[1]}x{frame.shape[0]}, the first frame is {size[1]}x{size[0]}"
            )
        frames.append(bgr_to_i420(frame))
    if size is None:
        raise AvatarError(f"{directory} has no frames (the video is empty)")
    if len(rects) != len(frames):
        raise AvatarError(f"{directory / RECTS} has {len(rects)} rects for {len(frames)} frames")
    _check_rects_inside(rects, size[1], size[0], directory)
    return AvatarAssets(
        directory=directory,
        manifest=manifest,
        frames_i420=np.stack(frames),
        rects=rects,
        idle_frames=idle_frames_of(manifest, len(frames), directory),
    )


def write_frame(directory: Path, index: int, frame_bgr: np.ndarray) -> None:
    """Frame `index` as `frames/NNNNNN.jpg`, JPEG quality 95."""
    frames_dir = directory / FRAMES_DIR
    frames_dir.mkdir(parents=True, exist_ok=True)
    path = frames_dir / f"{index:06d}.jpg"
    if not cv2.imwrite(str(path), frame_bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]):
        raise AvatarError(f"cannot write {path}")


def write_metadata(directory: Path, manifest: AvatarManifest, rects: Iterable[Iterable[int]]) -> None:
    """`avatar.yaml` and `crop_rects.json`, next to frames written by `write_frame`."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / MANIFEST).write_text(
        yaml.safe_dump(manifest.model_dump(exclude_none=True), sort_keys=False), encoding="utf-8"
    )
    (directory / RECTS).write_text(json.dumps([[int(v) for v in r] for r in rects]), encoding="utf-8")
