"""aiortc tracks that pull from a Session: pre-encoded H.264 video and pre-encoded Opus audio."""

from __future__ import annotations

from collections.abc import Callable

import av
from aiortc import MediaStreamTrack, RTCRtpSender
from aiortc.mediastreams import MediaStreamError

from media_server.session.session import Session


class AvatarVideoTrack(MediaStreamTrack):
    """Hands aiortc finished `av.Packet`s (aiortc packetises them without re-encoding)."""

    kind = "video"

    def __init__(self, session: Session) -> None:
        super().__init__()
        self._session = session

    async def recv(self) -> av.Packet:
        if self.readyState != "live":
            raise MediaStreamError
        return await self._session.next_video_packet()


class SpeechAudioTrack(MediaStreamTrack):
    """Hands aiortc finished Opus packets (aiortc sends them as they are)."""

    kind = "audio"

    def __init__(self, session: Session) -> None:
        super().__init__()
        self._session = session

    async def recv(self) -> av.Packet:
        if self.readyState != "live":
            raise MediaStreamError
        return await self._session.next_audio_packet()


def route_keyframe_requests(sender: RTCRtpSender, request_keyframe: Callable[[], None]) -> None:
    """Make the receiver's PLI/FIR reach our encoder.

    aiortc answers PLI/FIR by calling the sender's private `_send_keyframe()`, which only
    affects aiortc's own encoder; with pre-encoded packets the request would be lost, and
    aiortc has no public hook for it. pyproject.toml caps aiortc at the minor release this
    was tested on, and tests/unit/test_aiortc_hooks.py checks the hook is still there.
    """
    sender._send_keyframe = request_keyframe  # type: ignore[method-assign]
