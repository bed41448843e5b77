"""A session's own frames: composited and H.264-encoded on the session's own thread, never on the event loop.

The encoder exists only while the session needs its own frames (`video_out`): released when the
session goes back to the shared idle loop, a fresh one starts with a keyframe. Each frame comes with
the bitrate the viewer's link allows and whether it must be a keyframe.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import av
import numpy as np

from media_server.avatars.store import LoadedAvatar
from media_server.config import VideoConfig
from media_server.session.stats import SessionStats
from media_server.video.compositor import composite
from media_server.video.encoder import H264Encoder


class Renderer:
    def __init__(self, avatar: LoadedAvatar, video: VideoConfig, stats: SessionStats, name: str) -> None:
        self._avatar = avatar
        self._video = video
        self._stats = stats
        self._encoder: H264Encoder | None = None
        # One thread: frames are encoded in order, and one session never takes more than a core.
        self._worker = ThreadPoolExecutor(1, thread_name_prefix=name)

    @property
    def encoding(self) -> bool:
        """Whether the session holds an encoder (it does while it sends its own frames)."""
        return self._encoder is not None

    def release_encoder(self) -> None:
        """Only between frames: the next frame rendered starts a fresh encoder, with a keyframe."""
        self._encoder = None

    async def render(
        self, background: int, mouth: bytes | None, pts: int, kbps: float, keyframe: bool, frame_step: int = 1
    ) -> av.Packet:
        """Avatar frame `background`, with `mouth` composited in when given, as one H.264 packet at `kbps`
        (given every `frame_step`-th frame)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._worker, self._render, background, mouth, pts, kbps, keyframe, frame_step
        )

    def _render(
        self, background: int, mouth: bytes | None, pts: int, kbps: float, keyframe: bool, frame_step: int
    ) -> av.Packet:
        started = time.perf_counter()
        if mouth is None:
            frame = self._avatar.frames[background]
        else:
            frame = composite(self._avatar, background, np.frombuffer(mouth, np.uint8))
            self._stats.record("composite", (time.perf_counter() - started) * 1000)
        encoder = self._encoder
        if encoder is None:
            encoder = self._encoder = H264Encoder(self._avatar.width, self._avatar.height, self._video)
        encode_started = time.perf_counter()
        packet = encoder.encode(frame, pts, kbps, keyframe, frame_step)
        self._stats.record("encode", (time.perf_counter() - encode_started) * 1000)
        return packet

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self._worker.shutdown, True)
