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

The loop comes in rungs, so idle viewers on slow links adapt too: the top one at constant quality
(its peaks capped at `video.max_bitrate_kbps`), and one at each bitrate of `video.idle_rungs_kbps`
(x264's average bitrate, peaks capped there too, and a keyframe's burst kept to the live encoder's
`BUFFER_S`). All rungs have their keyframes at the same positions, so a session moves between them
at any of the loop's keyframes (`choose_rung`).
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
from media_server.video.encoder import BUFFER_S, x264

log = logging.getLogger(__name__)


STAY_MARGIN = 1.1  # the rung playing stays while its bitrate is within this many times the target

IdleRungs = tuple["IdleLoop", ...]  # an avatar's rungs, the highest bitrate first


@dataclass(frozen=True)
class IdleLoop:
    """One rung of the encoded loop: one packet (Annex B bytes) per position."""

    packets: tuple[bytes, ...]
    keyframe_every: int
    kbps: float  # its mean bitrate at 25 fps

    def position(self, frame: int) -> int:
        """The loop position session frame `frame` shows."""
        return frame % len(self.packets)

    def is_keyframe(self, position: int) -> bool:
        return position % self.keyframe_every == 0


def keyframe_every(config: VideoConfig) -> int:
    return max(1, int(config.shared_keyframe_interval_s * VIDEO_FPS))


def choose_rung(rungs: IdleRungs, target_kbps: float, playing: IdleLoop | None) -> IdleLoop | None:
    """The best rung within the target bitrate, but no more than one above the rung playing: each step up
    is one the link shows it carries before the next (the target may double on a report, the rungs by
    about 1.4 times). The rung playing stays while it is within STAY_MARGIN of the target, so an
    estimate that wobbles around a rung does not flip between two. None: even the lowest is too much."""
    lowest_allowed = 0 if playing is None else max(0, rungs.index(playing) - 1)
    for rung in rungs[lowest_allowed:]:
        if rung.kbps <= target_kbps * (STAY_MARGIN if rung is playing else 1.0):
            return rung
    return None


def rung_rates(config: VideoConfig) -> list[tuple[int, bool]]:
    """(kbps, constant quality) of each rung, the top one first."""
    return [(config.max_bitrate_kbps, True), *((kbps, False) for kbps in config.idle_rungs_kbps)]


def encode_idle_loop(avatar: LoadedAvatar, config: VideoConfig, kbps: int, constant_quality: bool) -> IdleLoop:
    """The avatar's idle loop as one stream with a keyframe every `keyframe_every(config)` positions: at
    constant quality with peaks capped at `kbps`, or at an average of `kbps`."""
    every = keyframe_every(config)
    options = {"preset": config.idle_preset}
    if constant_quality:
        options["crf"] = str(config.idle_crf)
    # The lower rungs are for slow links: their buffer, and so their keyframes' burst, is the live encoder's.
    bufsize = kbps if constant_quality else max(1, round(kbps * BUFFER_S))
    codec = x264(avatar.width, avatar.height, every, options, f"vbv-maxrate={kbps}:vbv-bufsize={bufsize}")
    if not constant_quality:
        codec.bit_rate = kbps * 1000
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
    data = tuple(bytes(packet) for packet in packets)
    return IdleLoop(data, every, sum(map(len, data)) * 8 / 1000 * VIDEO_FPS / len(data))


class IdleLoops:
    """This process's encoded idle loops, one set of rungs per avatar, each encoded once off the event loop.

    `get` never waits: until an avatar's top rung is ready its sessions use their own encoders, and
    each lower rung joins the set as soon as it is encoded.
    """

    def __init__(self, config: VideoConfig, executor: Executor | None = None) -> None:
        self._config = config
        self._executor = executor
        self._loops: weakref.WeakKeyDictionary[LoadedAvatar, IdleRungs] = weakref.WeakKeyDictionary()
        self._encoding: dict[LoadedAvatar, asyncio.Task[None]] = {}

    def get(self, avatar: LoadedAvatar) -> IdleRungs | None:
        """The avatar's rungs encoded so far, the highest first (None before the top one); the first call
        starts their encoding."""
        rungs = self._loops.get(avatar)
        if rungs is None and avatar not in self._encoding:
            task = asyncio.create_task(self._encode(avatar), name=f"idle-loop:{avatar.name}")
            self._encoding[avatar] = task
            task.add_done_callback(lambda _: self._encoding.pop(avatar, None))
        return rungs

    async def ready(self, avatar: LoadedAvatar) -> IdleRungs:
        """All the avatar's rungs, once they are encoded."""
        self.get(avatar)
        encoding = self._encoding.get(avatar)
        if encoding is not None:
            await asyncio.shield(encoding)
        rungs = self._loops.get(avatar)
        if rungs is None:
            raise RuntimeError(f"the idle loop of avatar {avatar.name} could not be encoded")
        return rungs

    async def close(self) -> None:
        """Stop encoding (what runs in the executor finishes there, unused)."""
        for task in self._encoding.values():
            task.cancel()
        await asyncio.gather(*self._encoding.values(), return_exceptions=True)

    async def _encode(self, avatar: LoadedAvatar) -> None:
        loop = asyncio.get_running_loop()
        encoded: list[IdleLoop] = []
        for kbps, constant_quality in rung_rates(self._config):
            try:
                rung = await loop.run_in_executor(
                    self._executor, encode_idle_loop, avatar, self._config, kbps, constant_quality
                )
            except Exception as error:  # noqa: BLE001 - its sessions keep their own encoders, or the rungs so far
                log.error("cannot encode the idle loop of avatar %s at %d kbit/s: %s", avatar.name, kbps, error)
                return  # without its top rung, the avatar's next session tries again
            encoded.append(rung)
            self._loops[avatar] = tuple(sorted(encoded, key=lambda r: -r.kbps))
        log.info(
            "avatar %s: idle loop encoded once, %d frames, rungs of %s kbit/s",
            avatar.name,
            len(encoded[0].packets),
            ", ".join(f"{rung.kbps:.0f}" for rung in self._loops[avatar]),
        )
