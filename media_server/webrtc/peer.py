"""One viewer's RTCPeerConnection, bound to its session: the SDP answer, trickle ICE, its end.

The transceivers are made first (aiortc as answerer binds the offer's m-lines to existing
ones), H.264 is forced by codec preference before the offer is applied, and the answer
carries all ICE candidates, so a client needs no trickle (it may still PATCH its own).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiortc import (
    MediaStreamTrack,
    RTCDataChannel,
    RTCIceCandidate,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
    sdp,
)

from media_server.session.session import Session
from media_server.webrtc.feedback import route_feedback
from media_server.webrtc.ice_servers import IceServer
from media_server.webrtc.microphone import echo_microphone
from media_server.webrtc.network import PeerNetwork
from media_server.webrtc.stats_channel import STATS_LABEL, send_stats
from media_server.webrtc.tracks import AvatarVideoTrack, SpeechAudioTrack

log = logging.getLogger(__name__)

H264 = "video/h264"


class BadOffer(ValueError):
    """An SDP offer the edge cannot answer: not SDP, no video, no H.264."""


class BadCandidate(ValueError):
    """A trickled ICE candidate that cannot be parsed or added."""


def require_sdp(offer_sdp: str, max_bytes: int, max_media: int) -> None:
    """A first, cheap look (before an avatar is loaded for it): BadOffer unless it starts like SDP
    with media, within the size and m-line limits."""
    if len(offer_sdp) > max_bytes:
        raise BadOffer(f"the offer is over the {max_bytes // 1024} kB SDP limit")
    if "m=" not in offer_sdp or not offer_sdp.lstrip().startswith("v="):
        raise BadOffer("the offer is not an SDP description")
    media = offer_sdp.count("\nm=")
    if media > max_media:
        raise BadOffer(f"the offer has {media} m-lines; at most {max_media} are accepted")


def offered_kinds(offer_sdp: str) -> list[str]:
    """The media kinds of the offer's m-lines; BadOffer unless it is SDP whose video accepts H.264."""
    try:
        media = sdp.SessionDescription.parse(offer_sdp).media
    except Exception as exc:  # noqa: BLE001 - the SDP parser raises many types
        raise BadOffer(f"the offer is not valid SDP: {exc}") from exc
    videos = [m for m in media if m.kind == "video"]
    if not videos:
        raise BadOffer("the offer has no video m-line")
    if not any(codec.mimeType.lower() == H264 for m in videos for codec in m.rtp.codecs):
        raise BadOffer("the offer does not accept H.264 video")
    return [m.kind for m in media]


class SessionPeer:
    """`ice_servers` are the session's own (TURN credentials minted for it), which its client may use too."""

    def __init__(
        self,
        session: Session,
        network: PeerNetwork,
        on_ended: Callable[[], Awaitable[object]],
    ) -> None:
        self.session = session
        self.ice_servers: list[IceServer] = network.servers(session.id)
        self.connection = RTCPeerConnection(network.configuration(self.ice_servers))
        self._network = network
        self._on_ended = on_ended
        self._connected = asyncio.Event()

    async def answer(self, offer_sdp: str) -> str:
        """The SDP answer to `offer_sdp`; BadOffer when it cannot be answered with H.264 video."""
        kinds = offered_kinds(offer_sdp)
        pc, session = self.connection, self.session
        # Transceivers first, so the offer's m-lines bind to them; one only for kinds the
        # offer has (an unmatched transceiver breaks aiortc's answer).
        video = pc.addTransceiver(AvatarVideoTrack(session), direction="sendonly")
        video.setCodecPreferences(
            [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType.lower() in (H264, "video/rtx")]
        )
        if "audio" in kinds:
            pc.addTransceiver(SpeechAudioTrack(session), direction="sendrecv")
        route_feedback(video.sender, session.link)
        pc.on("track", self._on_track)
        pc.on("datachannel", self._on_datachannel)
        pc.on("connectionstatechange", self._on_state)
        try:
            await pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
            answer = await pc.createAnswer()
        except Exception as exc:  # noqa: BLE001 - aiortc raises many types for SDP it cannot use
            raise BadOffer(f"cannot use the offer: {exc}") from exc
        with self._network.gathering():
            await pc.setLocalDescription(answer)
        return self._network.advertised(pc.localDescription.sdp)

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio":
            self.session.spawn(echo_microphone(self.session, track), "microphone")

    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        if channel.label == STATS_LABEL:
            self.session.spawn(send_stats(self.session, channel), "stats-channel")

    async def _on_state(self) -> None:
        state = self.connection.connectionState
        if state == "connected":
            self._connected.set()
        elif state in ("failed", "closed"):
            await self._on_ended()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def wait_connected(self, timeout_s: float) -> bool:
        try:
            await asyncio.wait_for(self._connected.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    def _mids(self) -> set[str]:
        remote = self.connection.remoteDescription
        if remote is None:
            return set()
        return {m.rtp.muxId for m in sdp.SessionDescription.parse(remote.sdp).media if m.rtp.muxId}

    async def add_candidates(self, fragment: str, limit: int) -> int:
        """Trickle ICE: the remote candidates of an SDP fragment (RFC 8840); how many were added.

        All of them are checked (count, media ids, syntax) before any is added.
        """
        lines = fragment.splitlines()
        if sum(line.startswith("a=candidate:") for line in lines) > limit:
            raise BadCandidate(f"more than {limit} candidates in one fragment")
        mids, mid = self._mids(), None
        candidates: list[RTCIceCandidate] = []
        for line in lines:
            if line.startswith("a=mid:"):
                mid = line[6:].strip()
                if mid not in mids:
                    raise BadCandidate(f"no media with mid {mid!r} in this session (known: {sorted(mids)})")
            elif line.startswith("a=candidate:"):
                try:
                    candidate = sdp.candidate_from_sdp(line[2:].split(":", 1)[1])
                except Exception as exc:  # noqa: BLE001 - aiortc's parser asserts, indexes and converts
                    raise BadCandidate(f"bad candidate line: {line[:200]}") from exc
                candidate.sdpMid = mid
                candidates.append(candidate)
        for candidate in candidates:
            try:
                await self.connection.addIceCandidate(candidate)
            except ValueError as exc:
                raise BadCandidate(f"cannot add the candidate: {exc}") from exc
        return len(candidates)

    async def close(self) -> None:
        await self.connection.close()
