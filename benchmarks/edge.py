"""`lipstream bench edge`: the edge's per-frame CPU cost, lipstream path against the naive one.

Both paths run side by side in one process on the same frames, with an identity
model (the mouth output is the input crop), so their ratio is meaningful on a
noisy shared machine. Each path is an ordered list of stages, each fed the
previous stage's output; a later stage (encoding) is one more list entry.

- lipstream: the crop is precomputed in the frame store (the session indexes it),
  composite works on I420 planes in the box only, and the encoder takes the I420
  frame as it is.
- naive: the crop is cut and resized from the full BGR frame, composite blends
  in float over a full-frame copy, the full frame is converted to YUV, and
  aiortc's stock H.264 encoder encodes it.

Both paths end with aiortc's RTP packetisation of the encoded frame, which a
session pays either way.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
from aiortc.codecs.h264 import H264Encoder as StockH264Encoder

from benchmarks.kit.speech import syllables
from lipstream.timebase import PTS_PER_FRAME, SPEECH_SAMPLES_PER_FRAME, VIDEO_FPS, VIDEO_TIME_BASE
from media_server.avatars.bundled import ensure_bundled_avatar
from media_server.avatars.catalogue import BUNDLED_AVATAR, AvatarCatalogue, AvatarNotFound
from media_server.avatars.format import AvatarAssets, AvatarError, AvatarManifest
from media_server.avatars.i420 import bgr_to_i420, i420_to_bgr
from media_server.avatars.store import FrameStore, LoadedAvatar, build_loaded_avatar
from media_server.config import VideoConfig
from media_server.speech.features import FeatureExtractor
from media_server.video.compositor import composite, feather_mask
from media_server.video.encoder import H264Encoder

log = logging.getLogger(__name__)

DEFAULT_SIZES = ("512x512", "1280x720")
DEFAULT_FRAMES = 200
WARMUP_FRAMES = 5
# Distinct avatar frames used per size: enough to vary the boxes, bounded in memory.
MAX_AVATAR_FRAMES = 50
FEATURE_REPEATS = 5

Stage = Callable[[int, Any], Any]


@dataclass(frozen=True)
class EdgePath:
    """One way of producing a frame: named stages run in order, each fed the previous output."""

    name: str
    stages: tuple[tuple[str, Stage], ...]


def parse_size(text: str) -> tuple[int, int]:
    """`WxH` with even, positive sides (I420 needs even dimensions)."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r} must look like 1280x720") from None
    if width <= 0 or height <= 0 or width % 2 or height % 2:
        raise argparse.ArgumentTypeError(f"size {text!r} must have positive, even sides")
    return width, height


def features_ms_per_frame() -> float:
    """Feature extraction for one second of speech, per video frame (it runs per utterance, not per frame)."""
    extractor = FeatureExtractor()
    audio = syllables(1.0)
    extractor.windows(audio)  # warm-up: filter banks and projections are built lazily
    times = []
    for _ in range(FEATURE_REPEATS):
        start = time.perf_counter()
        extractor.windows(audio)
        times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times) / (audio.size / SPEECH_SAMPLES_PER_FRAME)


def resized_avatar(avatar: LoadedAvatar, width: int, height: int) -> LoadedAvatar:
    """The avatar fitted into width x height (uniform scale, edges replicated), boxes moved with it."""
    scale = min(width / avatar.width, height / avatar.height)
    inner_w, inner_h = round(avatar.width * scale), round(avatar.height * scale)
    left, top = (width - inner_w) // 2, (height - inner_h) // 2
    n = min(avatar.n_frames, MAX_AVATAR_FRAMES)
    frames = []
    for frame in avatar.frames[:n]:
        bgr = cv2.resize(i420_to_bgr(frame), (inner_w, inner_h), interpolation=cv2.INTER_LINEAR)
        bgr = cv2.copyMakeBorder(bgr, top, height - inner_h - top, left, width - inner_w - left, cv2.BORDER_REPLICATE)
        frames.append(bgr_to_i420(bgr))
    rects = np.rint(avatar.rects[:n] * scale + np.array([left, top, left, top])).astype(np.int64)
    manifest = AvatarManifest(name=avatar.name, fps=avatar.fps, model=avatar.model, crop_size=avatar.geometry.size)
    assets = AvatarAssets(
        directory=avatar.directory,
        manifest=manifest,
        frames_i420=np.stack(frames),
        rects=rects,
        idle_frames=tuple(i for i in avatar.idle_frames if i < n) or (0,),
    )
    return build_loaded_avatar(assets)


def lipstream_path(avatar: LoadedAvatar) -> EdgePath:
    config = VideoConfig()
    encoder = H264Encoder(avatar.width, avatar.height, config)
    packetiser = StockH264Encoder()
    frames = iter(range(1 << 62))
    keyint = round(config.keyframe_interval_s * VIDEO_FPS)

    def encode(_: int, frame: av.VideoFrame) -> list[bytes]:
        n = next(frames)
        packet = encoder.encode_frame(frame, n * PTS_PER_FRAME, config.max_bitrate_kbps, n % keyint == 0)
        return packetiser.pack(packet)[0]

    return EdgePath(
        "lipstream",
        (
            ("crop", lambda i, _: avatar.crops_i420[i]),
            ("composite", lambda i, mouth: composite(avatar, i, mouth)),
            ("convert", lambda i, frame: av.VideoFrame.from_ndarray(frame, format="yuv420p")),
            ("encode", encode),
        ),
    )


def naive_path(avatar: LoadedAvatar) -> EdgePath:
    """The old system's per-frame work on BGR frames (BGR, so OpenCV's natural layout, is fed as bgr24)."""
    frames_bgr = [i420_to_bgr(frame) for frame in avatar.frames]
    size, margin = avatar.geometry.size, avatar.geometry.margin

    def crop(i: int, _: Any) -> np.ndarray:
        x0, y0, x1, y1 = avatar.rects[i]
        return cv2.resize(frames_bgr[i][y0:y1, x0:x1], (size, size), interpolation=cv2.INTER_LINEAR)

    def blend(i: int, crop_328: np.ndarray) -> np.ndarray:
        x0, y0, x1, y1 = avatar.rects[i]
        side = int(x1 - x0)
        mouth = crop_328[margin:-margin, margin:-margin]  # identity model
        pasted = crop_328.copy()
        pasted[margin:-margin, margin:-margin] = mouth
        pasted = cv2.resize(pasted, (side, side), interpolation=cv2.INTER_LINEAR).astype(np.float32)
        alpha = feather_mask(side)[..., None]
        full = frames_bgr[i].astype(np.float32)
        full[y0:y1, x0:x1] = alpha * pasted + (1.0 - alpha) * full[y0:y1, x0:x1]
        return full.astype(np.uint8)

    stock = StockH264Encoder()  # aiortc's own: preset medium, GOP 250, threads per core
    frames = iter(range(1 << 62))

    def encode(_: int, frame: av.VideoFrame) -> list[bytes]:
        frame.pts = next(frames) * PTS_PER_FRAME
        frame.time_base = VIDEO_TIME_BASE
        return stock.encode(frame)[0]

    return EdgePath(
        "naive",
        (
            ("crop", crop),
            ("composite", blend),
            ("convert", lambda i, frame: av.VideoFrame.from_ndarray(frame, format="bgr24").reformat(format="yuv420p")),
            ("encode", encode),
        ),
    )


def time_path(path: EdgePath, n_frames: int, n_avatar_frames: int, features_ms: float) -> dict[str, float]:
    """Median milliseconds per frame of each stage and of their per-frame sum."""
    times: dict[str, list[float]] = {name: [] for name, _ in path.stages}
    totals: list[float] = []
    for k in range(-WARMUP_FRAMES, n_frames):
        index, value, frame_total = k % n_avatar_frames, None, 0.0
        for name, stage in path.stages:
            start = time.perf_counter()
            value = stage(index, value)
            elapsed = 1000.0 * (time.perf_counter() - start)
            frame_total += elapsed
            if k >= 0:
                times[name].append(elapsed)
        if k >= 0:
            totals.append(frame_total)
    result = {"features": features_ms}
    result.update({name: statistics.median(values) for name, values in times.items()})
    result["total"] = features_ms + statistics.median(totals)
    return result


def run_edge_bench(avatar: LoadedAvatar, sizes: list[tuple[int, int]], n_frames: int) -> dict[str, Any]:
    features_ms = features_ms_per_frame()
    runs: list[dict[str, Any]] = []
    speedup: dict[str, float] = {}
    for width, height in sizes:
        label = f"{width}x{height}"
        log.info("timing %s at %s, %d frames per path", avatar.name, label, n_frames)
        sized = resized_avatar(avatar, width, height)
        totals = {}
        for path in (lipstream_path(sized), naive_path(sized)):
            ms = time_path(path, n_frames, sized.n_frames, features_ms)
            runs.append({"size": label, "path": path.name, "ms_per_frame": ms})
            totals[path.name] = ms["total"]
        speedup[label] = totals["naive"] / totals["lipstream"]
    return {
        "bench": "edge",
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "processor": platform.processor(),
            "python": platform.python_version(),
        },
        "avatar": avatar.name,
        "frames": n_frames,
        "runs": runs,
        "speedup": speedup,
    }


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("edge", help="edge per-frame cost: lipstream path vs the naive path")
    parser.add_argument("--avatar", default="default", help="avatar name or directory (default: default)")
    parser.add_argument(
        "--size",
        type=parse_size,
        action="append",
        metavar="WxH",
        help=f"frame size, repeatable (default: {' '.join(DEFAULT_SIZES)})",
    )
    parser.add_argument(
        "--frames", type=int, default=DEFAULT_FRAMES, help=f"frames timed per path and size (default {DEFAULT_FRAMES})"
    )
    parser.add_argument("--json", type=Path, default=None, metavar="OUT", help="write the results as JSON here")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    if args.frames <= 0:
        print(f"error: --frames must be positive, got {args.frames}", file=sys.stderr)
        return 2
    sizes = args.size or [parse_size(s) for s in DEFAULT_SIZES]
    try:
        if args.avatar == BUNDLED_AVATAR:
            ensure_bundled_avatar()
        avatar = FrameStore().get(AvatarCatalogue().locate(args.avatar))
    except (AvatarError, AvatarNotFound) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result = run_edge_bench(avatar, sizes, args.frames)
    for run in result["runs"]:
        stages = "  ".join(f"{k} {v:7.3f}" for k, v in run["ms_per_frame"].items())
        print(f"{run['size']:>10} {run['path']:<9} ms/frame: {stages}")
    for size, ratio in result["speedup"].items():
        print(f"{size:>10} speedup (naive / lipstream): {ratio:.2f}x")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0
