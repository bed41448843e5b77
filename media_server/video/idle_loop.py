"""An avatar's idle loop, H.264-encoded once per process and shared by every idle session of it.

Every idle session of an avatar shows the same pictures: session frame n shows loop position
n % L (`LoadedAvatar.idle_sequence`), whichever session it is. So the loop is encoded once, as one
stream that wraps around, and idle sessions send its packets instead of encoding their own. Encoded
once and ahead of time, it can afford what a live encoder cannot: a slower preset at constant quality
(`video.idle_preset`, `video.idle_crf`; the bitrate still caps its peaks) gives the bundled avatar a
sharper picture than the live encoder's at under a third of its bits, and so a third of every idle
viewer's packets. The settings a decoder sees (profile, level, one reference frame) are the live
encoder's (`encoder.x264`), so switching between the two streams at a keyframe changes nothing else.
A decoder can only follow that stream from a keyframe: position 0 is one (so the wrap needs no
reference) and so is every `keyframe_every`-th position. A session joins, or rejoins after its own
encoder's frames, at one of them, and a viewer's keyframe request during idle is answered by the
next one, never more than `video.shared_keyframe_interval_s` away.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from concurrent.futures import Executor
from dataclasses import dataclass

import av

from lipstream.timebase import PTS_PER_FRAME, VIDEO_FPS, VIDEO_TIME_BASE
from media_server.avatars.store import LoadedAvatar
from media_server.config import VideoConfig
from media_server.video.encoder import x264

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IdleLoop:
    """The encoded loop: one packet (Annex B bytes) per position."""

    packets: tuple[bytes, ...]
    keyframe_every: int

    def position(self, frame: int) -> int:
        """The loop position session frame `frame` shows."""
        return frame % len(self.packets)

    def is_keyframe(self, position: int) -> bool:
        return position % self.keyframe_every == 0


def keyframe_every(config: VideoConfig) -> int:
    return max(1, int(config.shared_keyframe_interval_s * VIDEO_FPS))


def encode_idle_loop(avatar: LoadedAvatar, config: VideoConfig) -> IdleLoop:
    """The avatar's idle loop as one stream with a keyframe every `keyframe_every(config)` positions
    (blocking: about 10 ms a 512x512 frame)."""
    every = keyframe_every(config)
    options = {"preset": config.idle_preset, "crf": str(config.idle_crf)}
    peak = f"vbv-maxrate={config.bitrate_kbps}:vbv-bufsize={config.bitrate_kbps}"
    codec = x264(avatar.width, avatar.height, every, options, peak)
    packets: list[av.Packet] = []
    for position, index in enumerate(avatar.idle_sequence()):
        frame = av.VideoFrame.from_numpy_buffer(avatar.frames[index], format="yuv420p")
        frame.pts, frame.time_base = position * PTS_PER_FRAME, VIDEO_TIME_BASE
        if position % every == 0:
            frame.pict_type = av.video.frame.PictureType.I
        packets.extend(codec.encode(frame))
    if len(packets) != len(avatar.idle_sequence()):
        raise RuntimeError(f"x264 gave {len(packets)} packets for {len(avatar.idle_sequence())} frames")
    keyframes = [position for position, packet in enumerate(packets) if packet.is_keyframe]
    if keyframes != list(range(0, len(packets), every)):
        raise RuntimeError(f"x264 put the keyframes at {keyframes}, not every {every} frames")
    return IdleLoop(tuple(bytes(packet) for packet in packets), every)


class IdleLoops:
    """This process's encoded idle loops, one per avatar, each encoded once off the event loop.

    `get` never waits: until an avatar's loop is ready its sessions use their own encoders.
    """

    def __init__(self, config: VideoConfig, executor: Executor | None = None) -> None:
        self._config = config
        self._executor = executor
        self._loops: weakref.WeakKeyDictionary[LoadedAvatar, IdleLoop] = weakref.WeakKeyDictionary()
        self._encoding: dict[LoadedAvatar, asyncio.Future[IdleLoop]] = {}

    def get(self, avatar: LoadedAvatar) -> IdleLoop | None:
        """The avatar's loop if it is ready; else None, and it is being encoded."""
        loop = self._loops.get(avatar)
        if loop is None and avatar not in self._encoding:
            future = asyncio.get_running_loop().run_in_executor(self._executor, encode_idle_loop, avatar, self._config)
            self._encoding[avatar] = future
            future.add_done_callback(lambda done: self._encoded(avatar, done))
        return loop

    async def ready(self, avatar: LoadedAvatar) -> IdleLoop:
        """The avatar's loop, once it is encoded."""
        loop = self.get(avatar)
        return loop if loop is not None else await asyncio.shield(self._encoding[avatar])

    def _encoded(self, avatar: LoadedAvatar, future: asyncio.Future[IdleLoop]) -> None:
        del self._encoding[avatar]
        if future.cancelled():
            return
        error = future.exception()
        if error is not None:  # its sessions keep their own encoders; the next session tries again
            log.error("cannot encode the idle loop of avatar %s: %s", avatar.name, error)
            return
        loop = future.result()
        self._loops[avatar] = loop
        log.info(
            "avatar %s: idle loop encoded once, %d frames, %.0f kB",
            avatar.name,
            len(loop.packets),
            sum(len(p) for p in loop.packets) / 1024,
        )
