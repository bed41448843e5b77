"""aiortc tracks that pull from a Session: pre-encoded H.264 video and pre-encoded Opus audio."""

from __future__ import annotations

import av
from aiortc import MediaStreamTrack
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
