"""SDP offers the edge cannot answer get a 400 in words, and hold no session slot."""

from __future__ import annotations

import aiohttp
from aiortc import RTCPeerConnection, RTCRtpReceiver
from edge_helpers import running_edge


async def offer_sdp(video_codecs: list[str] | None, audio: bool = True, video: bool = True) -> str:
    pc = RTCPeerConnection()
    try:
        if video:
            transceiver = pc.addTransceiver("video", direction="recvonly")
            if video_codecs is not None:
                codecs = RTCRtpReceiver.getCapabilities("video").codecs
                transceiver.setCodecPreferences([c for c in codecs if c.mimeType in video_codecs])
        if audio:
            pc.addTransceiver("audio", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        return pc.localDescription.sdp
    finally:
        await pc.close()


async def test_offers_without_h264_or_without_video_are_refused_in_words() -> None:
    async with running_edge(sessions={"max_sessions": 1}) as edge, aiohttp.ClientSession() as http:
        for sdp, reason in (
            (await offer_sdp(["video/VP8"]), "does not accept H.264"),
            (await offer_sdp(None, video=False), "no video m-line"),
        ):
            async with http.post(f"{edge.url}/offer", json={"sdp": sdp, "type": "offer"}) as response:
                assert response.status == 400, await response.text()
                assert reason in (await response.json())["error"]
        assert not edge.edge.sessions
        async with http.post(f"{edge.url}/offer", json={"sdp": await offer_sdp(None), "type": "offer"}) as response:
            assert response.status == 200, "a refused offer must not keep the only session slot"
        assert len(edge.edge.sessions) == 1
