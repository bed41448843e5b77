"""Which packets a session sends: a rung of the avatar's shared idle loop while it is idle, its own encoder's otherwise.

A decoder follows one stream at a time, so a session switches only where its viewer loses nothing:
- to its own encoder (speech, frames skipped, the loop not encoded yet, no rung within the link's
  target): at once; the encoder is fresh and starts with a keyframe;
- back to the shared loop, or to another of its rungs: at one of the loop's keyframes, on an idle
  frame; the session's encoder is then released, and the session costs next to nothing while it listens.
Consecutive session frames are consecutive loop positions, so after position p the session may send
p + 1 of the same rung; after a skipped frame it waits for a loop keyframe, as a session joining does.
H.264 forbids two keyframes in a row with the same idr_pic_id, which two encoders could give, so the
switch back also waits while the last frame was the session's own keyframe.

The viewer's link (`ViewerLink`) sets the own encoder's bitrate, which of its frames are sent (every
`frame_step`-th: a shared rung sends them all) and when it makes a keyframe; every packet sent, and
every keyframe, goes back to it.
"""

from __future__ import annotations

import av

from lipstream.timebase import PTS_PER_FRAME, VIDEO_TIME_BASE
from media_server.avatars.store import LoadedAvatar
from media_server.network.link import ViewerLink
from media_server.session.mouth import Mouth
from media_server.session.renderer import Renderer
from media_server.session.stats import SessionStats
from media_server.video.idle_loop import IdleLoop, IdleLoops, choose_rung


class VideoOut:
    def __init__(
        self, avatar: LoadedAvatar, renderer: Renderer, loops: IdleLoops | None, link: ViewerLink, stats: SessionStats
    ) -> None:
        self._avatar = avatar
        self._renderer = renderer
        self._loops = loops
        self._link = link
        self._stats = stats
        self._rung: IdleLoop | None = None  # the rung of the shared loop the last frame came from
        self._shared_at: int | None = None  # the session frame last sent from the shared loop
        self._own_keyframe = False  # the last frame sent was the session's own keyframe

    @property
    def source(self) -> str:
        """Where the last frame came from: "shared" (the idle loop) or "own" (the session's encoder)."""
        return "shared" if self._shared_at is not None else "own"

    @property
    def rung_kbps(self) -> float | None:
        """The mean bitrate of the shared loop's rung the last frame came from."""
        return None if self._shared_at is None or self._rung is None else self._rung.kbps

    def sends(self, frame: int, idle: bool) -> bool:
        """Whether session frame `frame` goes out: every frame of a shared rung, every `frame_step`-th of its own."""
        return self._shared_rung(frame, idle) is not None or frame % self._link.rate.frame_step == 0

    async def packet(self, frame: int, background: int, mouth: Mouth) -> av.Packet:
        """Session frame `frame`: avatar frame `background`, with the mouth region when there is one."""
        pts = frame * PTS_PER_FRAME
        rung = self._shared_rung(frame, mouth.idle)
        if rung is not None:
            self._rung, self._shared_at, self._own_keyframe = rung, frame, False
            self._renderer.release_encoder()
            self._stats.shared_frame()
            position = rung.position(frame)
            packet = av.Packet(rung.packets[position])
            packet.pts, packet.time_base, packet.is_keyframe = pts, VIDEO_TIME_BASE, rung.is_keyframe(position)
        else:
            if self._shared_at == frame - 1:
                self._link.own_encoder_starts()
            self._shared_at = None
            rate, keyframe = self._link.rate, self._link.keyframes.due(frame)
            packet = await self._renderer.render(
                background, mouth.crop, pts, rate.target_kbps, keyframe, rate.frame_step
            )
            self._own_keyframe = packet.is_keyframe
        if packet.is_keyframe:
            self._link.keyframes.keyframe_sent(frame)
        self._link.sent(packet.size)
        return packet

    def _shared_rung(self, frame: int, idle: bool) -> IdleLoop | None:
        """The rung `frame` is sent from, or None: the session's own encoder."""
        rungs = self._loops.get(self._avatar) if self._loops is not None and idle else None
        if not rungs:
            return None
        playing = self._rung if self._shared_at == frame - 1 else None
        best = choose_rung(rungs, self._link.rate.target_kbps, playing)
        if best is not None and best is playing:
            return best
        if best is not None and best.is_keyframe(best.position(frame)) and not self._own_keyframe:
            return best  # join, or change rungs, at a loop keyframe
        return playing  # another rung, or the own encoder, from the loop's next keyframe on
