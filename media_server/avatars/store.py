"""Decoded avatars shared read-only by every session, with LRU eviction by memory.

Each avatar is decoded once into I420 frames plus the model input crop of every
frame, so a session's per-frame work is an index, not a conversion. Arrays are
read-only: sessions share them and composite into their own copy. They are
memory-mapped from the cache (`mapped`), so every worker process of a machine
shares one copy of them.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lipstream.paths import cache_dir
from media_server.avatars.format import AvatarAssets, idle_frames_of, load_avatar, read_manifest, source_files
from media_server.avatars.geometry import CropGeometry, even_box, make_crop
from media_server.avatars.mapped import Arrays, mapped_arrays, version_of

log = logging.getLogger(__name__)

DEFAULT_MEMORY_BUDGET_MB = 1024.0


@dataclass(frozen=True, eq=False)
class LoadedAvatar:
    """One avatar ready for sessions; every array is read-only."""

    name: str
    directory: Path
    fps: int
    model: str
    geometry: CropGeometry
    frames: np.ndarray  # (n, H*3//2, W) uint8 I420
    crops_i420: np.ndarray  # (n, geometry.wire_bytes) uint8, the inference wire format
    rects: np.ndarray  # (n, 4) int, square boxes on even coordinates
    idle_frames: tuple[int, ...]

    @property
    def width(self) -> int:
        return int(self.frames.shape[2])

    @property
    def height(self) -> int:
        return int(self.frames.shape[1]) * 2 // 3

    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def nbytes(self) -> int:
        return int(self.frames.nbytes + self.crops_i420.nbytes + self.rects.nbytes)

    def idle_sequence(self) -> tuple[int, ...]:
        """Idle frames forward then back without repeating the ends, so the loop has no jump."""
        idle = self.idle_frames
        return idle + idle[-2:0:-1]


def _read_only(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


def build_loaded_avatar(assets: AvatarAssets) -> LoadedAvatar:
    """Precompute even boxes and model crops for every frame of validated assets."""
    width, height = assets.width, assets.height
    geometry = CropGeometry(size=assets.manifest.crop_size)
    boxes = [even_box(rect, width, height) for rect in assets.rects]
    crops = np.stack(
        [make_crop(frame, box, width, height, geometry) for frame, box in zip(assets.frames_i420, boxes, strict=True)]
    )
    return LoadedAvatar(
        name=assets.manifest.name,
        directory=assets.directory,
        fps=assets.manifest.fps,
        model=assets.manifest.model,
        geometry=geometry,
        frames=_read_only(assets.frames_i420),
        crops_i420=_read_only(crops),
        rects=_read_only(np.array(boxes, dtype=np.int64)),
        idle_frames=assets.idle_frames,
    )


def _decoded_arrays(directory: Path) -> Arrays:
    avatar = build_loaded_avatar(load_avatar(directory))
    return {"frames": avatar.frames, "crops": avatar.crops_i420, "rects": avatar.rects}


def map_loaded_avatar(directory: Path, cache: Path) -> LoadedAvatar:
    """The avatar in `directory` with its arrays mapped from `cache` (decoded into it the first time)."""
    manifest = read_manifest(directory)
    version = version_of(source_files(directory, manifest))
    arrays = mapped_arrays(cache, directory, version, lambda: _decoded_arrays(directory))
    frames = arrays["frames"]
    return LoadedAvatar(
        name=manifest.name,
        directory=directory,
        fps=manifest.fps,
        model=manifest.model,
        geometry=CropGeometry(size=manifest.crop_size),
        frames=frames,
        crops_i420=arrays["crops"],
        rects=arrays["rects"],
        idle_frames=idle_frames_of(manifest, int(frames.shape[0]), directory),
    )


class FrameStore:
    """Thread-safe cache of LoadedAvatars; concurrent requests for one avatar load it once.

    `cache` holds the decoded arrays every process maps (default: the cache's `frames/`).
    """

    def __init__(self, memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB, cache: Path | None = None) -> None:
        if memory_budget_mb <= 0:
            raise ValueError(f"memory_budget_mb must be positive, got {memory_budget_mb}")
        self._budget = int(memory_budget_mb * 1024 * 1024)
        self._cache = cache
        self._lock = threading.Lock()
        self._resident: OrderedDict[Path, LoadedAvatar] = OrderedDict()
        self._loading: dict[Path, Future[LoadedAvatar]] = {}

    @property
    def resident_bytes(self) -> int:
        with self._lock:
            return sum(avatar.nbytes for avatar in self._resident.values())

    def get(self, directory: Path) -> LoadedAvatar:
        """The avatar in `directory`, decoded on first use (blocking: call it from an executor)."""
        key = Path(directory).resolve()
        with self._lock:
            avatar = self._resident.get(key)
            if avatar is not None:
                self._resident.move_to_end(key)
                return avatar
            loading = self._loading.get(key)
            if loading is None:
                pending: Future[LoadedAvatar] = Future()
                self._loading[key] = pending
        if loading is not None:
            return loading.result()
        try:
            avatar = map_loaded_avatar(key, self._cache or cache_dir() / "frames")
        except BaseException as exc:
            with self._lock:
                del self._loading[key]
            pending.set_exception(exc)
            raise
        with self._lock:
            del self._loading[key]
            self._resident[key] = avatar
            self._evict(keep=key)
        log.info(
            "loaded avatar %s: %d frames %dx%d, %.1f MB",
            avatar.name,
            avatar.n_frames,
            avatar.width,
            avatar.height,
            avatar.nbytes / 2**20,
        )
        pending.set_result(avatar)
        return avatar

    def _evict(self, keep: Path) -> None:
        """Drop least recently used avatars until within budget; sessions holding one keep it alive."""
        total = sum(avatar.nbytes for avatar in self._resident.values())
        for key in list(self._resident):
            if total <= self._budget:
                break
            if key == keep:
                continue
            total -= self._resident.pop(key).nbytes
            log.info("evicted avatar %s from the frame store", key)
        if total > self._budget:
            log.warning("avatar %s alone exceeds the frame store budget of %.0f MB", keep, self._budget / 2**20)
