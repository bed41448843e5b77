"""Which packets a session sends: the avatar's shared idle loop while it is idle, its own encoder's otherwise.

A decoder follows one stream at a time, so a session switches only where its viewer loses nothing:
- to its own encoder (speech, frames skipped, the loop not encoded yet): at once; the encoder is
  fresh and starts with a keyframe;
- back to the shared loop: at one of the loop's keyframes, on an idle frame; the session's encoder
  is then released, and the session costs next to nothing while it listens.
Consecutive session frames are consecutive loop positions, so after position p the session may send
p + 1; after a skipped frame it waits for a loop keyframe, as a session joining does. H.264 forbids
two keyframes in a row with the same idr_pic_id, which two encoders could give, so the switch back
also waits while the last frame was the session's own keyframe.
"""

from __future__ import annotations

import av

from lipstream.timebase import PTS_PER_FRAME, VIDEO_TIME_BASE
from media_server.avatars.store import LoadedAvatar
from media_server.session.mouth import Mouth
from media_server.session.renderer import Renderer
from media_server.session.stats import SessionStats
from media_server.video.idle_loop import IdleLoop, IdleLoops


class VideoOut:
    def __init__(self, avatar: LoadedAvatar, renderer: Renderer, loops: IdleLoops | None, stats: SessionStats) -> None:
        self._avatar = avatar
        self._renderer = renderer
        self._loops = loops
        self._stats = stats
        self._shared_at: int | None = None  # the session frame last sent from the shared loop
        self._own_keyframe = False  # the last frame sent was the session's own keyframe

    @property
    def source(self) -> str:
        """Where the last frame came from: "shared" (the idle loop) or "own" (the session's encoder)."""
        return "shared" if self._shared_at is not None else "own"

    def request_keyframe(self) -> None:
        """A viewer's PLI/FIR: the session's encoder answers at once; on the loop, its next keyframe does."""
        self._renderer.request_keyframe()

    async def packet(self, frame: int, background: int, mouth: Mouth) -> av.Packet:
        """Session frame `frame`: avatar frame `background`, with the mouth region when there is one."""
        pts = frame * PTS_PER_FRAME
        loop = self._loops.get(self._avatar) if self._loops is not None and mouth.idle else None
        if loop is not None and self._may_share(loop, frame):
            self._shared_at, self._own_keyframe = frame, False
            self._renderer.release_encoder()
            self._stats.shared_frame()
            position = loop.position(frame)
            packet = av.Packet(loop.packets[position])
            packet.pts, packet.time_base, packet.is_keyframe = pts, VIDEO_TIME_BASE, loop.is_keyframe(position)
            return packet
        self._shared_at = None
        packet = await self._renderer.render(background, mouth.crop, pts)
        self._own_keyframe = packet.is_keyframe
        return packet

    def _may_share(self, loop: IdleLoop, frame: int) -> bool:
        if self._shared_at == frame - 1:
            return True
        return loop.is_keyframe(loop.position(frame)) and not self._own_keyframe
