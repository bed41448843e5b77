"""Turn a video or a photo into an avatar directory: find the face, place the model's box.

The box follows the project-wide mouth contract: in the model's 320x320 crop
the mouth centre sits at (160, 176) with lips about 140 px wide. Boxes come from
a face detector run on every frame, smoothed over time so the crop does not
jitter, with missed frames filled from their neighbours.
"""

from __future__ import annotations

import logging
import shutil
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np
from cv2 import data as cv2_data
from tqdm import tqdm

from lipstream import contract
from media_server.avatars.format import AvatarError, AvatarManifest, decode_video, write_frame, write_metadata
from media_server.avatars.geometry import Box, CropGeometry, even_box

log = logging.getLogger(__name__)

# Face box -> model box, calibrated on skimage.data.astronaut() and checked on the
# crops of the bundled avatar. On the astronaut the lips run from x 203 to 244
# (41 px) with their centre at (223.5, 147); the cascade's face box averages
# 98 px over the bundled avatar's frames (93 on the still). 41 px of lips must
# span 140 of the 320 crop, so the 328 box side is 41 * 328 / 140 = 96 px, about
# 0.99 face widths; the mouth centre lies on the face's vertical centre line,
# 0.84 face heights below the top of the face box. Resulting crops: lips 135-141
# px wide, centred within 3 px of (160, 176).
BOX_SIDE_PER_FACE_WIDTH = 0.99
MOUTH_X_PER_FACE_WIDTH = 0.5
MOUTH_Y_PER_FACE_HEIGHT = 0.84

# Detection runs on frames scaled down to this side: faces stay well above the
# cascade's minimum and large videos stay fast.
DETECT_MAX_SIDE = 640
MIN_FACE_FRACTION = 0.08
MIN_NEIGHBOURS = 5
# A real face collects tens of overlapping cascade hits, clutter a handful (on the
# astronaut: 33-48 against 4-8 for the suit's collar, which is the larger box).
# The largest face among those with at least this share of the best's hits wins.
STRONG_VOTE_FRACTION = 0.5
MEDIAN_WINDOW = 5
SMOOTH_SIGMA_FRAMES = 2.0


class AvatarExistsError(AvatarError):
    """The output directory is already taken."""


class FaceTracker:
    """Largest convincing frontal face per frame (OpenCV's Haar cascade), or None where none is found."""

    def __init__(self) -> None:
        path = str(Path(cv2_data.haarcascades) / "haarcascade_frontalface_default.xml")
        self._cascade = cv2.CascadeClassifier(path)
        if self._cascade.empty():
            raise RuntimeError(f"OpenCV face cascade {path} cannot be loaded")
        self.faces: list[tuple[float, float, float, float] | None] = []

    def add(self, frame_bgr: np.ndarray) -> None:
        height, width = frame_bgr.shape[:2]
        scale = min(1.0, DETECT_MAX_SIDE / max(height, width))
        gray = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY)
        if scale < 1.0:
            gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        gray = cv2.equalizeHist(gray)
        min_side = max(24, int(MIN_FACE_FRACTION * min(gray.shape)))
        found, votes = self._cascade.detectMultiScale2(
            gray, scaleFactor=1.1, minNeighbors=MIN_NEIGHBOURS, minSize=(min_side, min_side)
        )
        if len(found) == 0:
            self.faces.append(None)
            return
        hits = np.asarray(votes).reshape(-1)
        strong = np.asarray(found)[hits >= STRONG_VOTE_FRACTION * hits.max()]
        x, y, w, h = (float(v) for v in max(strong, key=lambda f: f[2] * f[3]))
        self.faces.append((x / scale, y / scale, w / scale, h / scale))


def _index_ranges(indices: Iterable[int]) -> str:
    """`1-3, 7` for [1, 2, 3, 7]: readable lists of frame numbers."""
    ranges: list[list[int]] = []
    for i in indices:
        if ranges and i == ranges[-1][1] + 1:
            ranges[-1][1] = i
        else:
            ranges.append([i, i])
    return ", ".join(f"{a}-{b}" if b > a else f"{a}" for a, b in ranges)


def _smooth(track: np.ndarray) -> np.ndarray:
    """Median (drops detector outliers), then Gaussian (removes jitter), per column, edges held."""
    n = len(track)
    half = min(MEDIAN_WINDOW // 2, (n - 1) // 2)
    if half == 0:
        return track
    padded = np.pad(track, ((half, half), (0, 0)), mode="edge")
    median = np.median(np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1, axis=0), axis=-1)
    radius = min(int(3 * SMOOTH_SIGMA_FRAMES), n - 1)
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / SMOOTH_SIGMA_FRAMES) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(median, ((radius, radius), (0, 0)), mode="edge")
    return np.stack([np.convolve(padded[:, c], kernel, mode="valid") for c in range(track.shape[1])], axis=1)


def face_track(faces: list[tuple[float, float, float, float] | None], label: str) -> np.ndarray:
    """(n, 4) smoothed face boxes (x, y, w, h); gaps interpolated from neighbouring frames."""
    n = len(faces)
    found = [i for i, face in enumerate(faces) if face is not None]
    if not found:
        raise AvatarError(f"no face found in {label}" + (f" (none of its {n} frames)" if n > 1 else ""))
    missing = [i for i, face in enumerate(faces) if face is None]
    if missing:
        if 2 * len(found) <= n:
            raise AvatarError(f"a face was found in only {len(found)} of the {n} frames of {label}")
        log.warning("no face in frames %s of %s: boxes interpolated from neighbours", _index_ranges(missing), label)
    known = np.array([faces[i] for i in found], dtype=np.float64)
    track = np.stack([np.interp(np.arange(n), found, known[:, c]) for c in range(4)], axis=1)
    return _smooth(track)


DEFAULT_GEOMETRY = CropGeometry()


def mouth_box(face: np.ndarray, width: int, height: int, geometry: CropGeometry = DEFAULT_GEOMETRY) -> Box:
    """The square model box for a face (x, y, w, h), placing the mouth where the model expects it."""
    x, y, w, h = face
    side = BOX_SIDE_PER_FACE_WIDTH * w
    mouth_x = x + MOUTH_X_PER_FACE_WIDTH * w
    mouth_y = y + MOUTH_Y_PER_FACE_HEIGHT * h
    fx = (contract.MOUTH_CENTRE_IN_CROP[0] + geometry.margin) / geometry.size
    fy = (contract.MOUTH_CENTRE_IN_CROP[1] + geometry.margin) / geometry.size
    x0, y0 = mouth_x - fx * side, mouth_y - fy * side
    return even_box([round(x0), round(y0), round(x0 + side), round(y0 + side)], width, height)


def _resample(timed: Iterable[tuple[float | None, np.ndarray]], fps: int) -> Iterator[np.ndarray]:
    """Frames at `fps`: each output instant shows the latest input frame at or before it."""
    pending: np.ndarray | None = None
    start: float | None = None
    slot = 0
    for time, frame in timed:
        if time is None:
            yield frame
            continue
        start = time if start is None else start
        while pending is not None and slot / fps < time - start - 1e-6:
            yield pending
            slot += 1
        pending = frame
    if pending is not None:
        yield pending


def read_input(path: Path, fps: int) -> tuple[Iterator[np.ndarray], bool]:
    """(BGR frames, is_video): a photo gives one frame, a video is decoded with PyAV at `fps`."""
    if not path.is_file():
        raise AvatarError(f"input {path} does not exist")
    if cv2.haveImageReader(str(path)):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise AvatarError(f"photo {path} cannot be read")
        return iter([image]), False
    return _resample(decode_video(path), fps), True


def build_avatar(frames: Iterable[np.ndarray], out: Path, name: str, fps: int, label: str) -> Path:
    """Write an avatar directory from BGR frames, atomically: it appears complete or not at all."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex}"
    try:
        tracker = FaceTracker()
        size: tuple[int, int] | None = None
        for index, frame in enumerate(frames):
            if size is None:
                size = frame.shape[:2]
            elif frame.shape[:2] != size:
                raise AvatarError(f"frame {index} of {label} changes size to {frame.shape[1]}x{frame.shape[0]}")
            tracker.add(frame)
            write_frame(staging, index, frame)
        if size is None:
            raise AvatarError(f"{label} has no frames")
        track = face_track(tracker.faces, label)
        rects = [mouth_box(face, size[1], size[0]) for face in track]
        write_metadata(staging, AvatarManifest(name=name, fps=fps), rects)
        try:
            staging.rename(out)
        except OSError as exc:
            raise AvatarExistsError(f"avatar directory {out} already exists") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("avatar %s: %d frames written to %s", name, len(rects), out)
    return out


def prepare_avatar(input_path: Path, name: str, out: Path, fps: int) -> Path:
    """`lipstream avatar prepare`: the avatar directory `out` built from a video or a photo."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise AvatarExistsError(f"{out} already exists: remove it or choose another --name/--out")
    frames, is_video = read_input(Path(input_path), fps)
    shown: Iterable[np.ndarray] = tqdm(frames, desc=f"preparing {name}", unit="frame") if is_video else frames
    return build_avatar(shown, out, name, fps, str(input_path))
