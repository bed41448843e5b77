"""Live sessions end to end: a real aiortc viewer, real H.264 and Opus, a real inference server."""

from __future__ import annotations

import asyncio
import fractions
import json
import threading

import aiohttp
import av
import numpy as np
import pytest
from aiortc import MediaStreamTrack, RTCPeerConnection
from aiortc.rtp import RTCP_PSFB_PLI, RtcpPsfbPacket
from edge_helpers import (
    IDLE_BEFORE_SPEECH,
    health_until,
    link_known,
    motion_around_speech_start,
    mouth_motion,
    running_edge,
    speak,
    wait_for,
)
from inference_helpers import make_config

from benchmarks.kit.speech import burst_envelope, encode, s16, voiced_bursts
from benchmarks.kit.viewer import connect_viewer
from inference_service.serving.server import InferenceServer

FPS = 25


def session_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("session-")]


async def test_offer_session_streams_h264_and_speech_moves_the_lips() -> None:
    async with running_edge() as edge, aiohttp.ClientSession() as http:
        viewer = await connect_viewer(http, edge.url)
        avatar = await edge.edge.load_avatar("default")
        try:
            assert viewer.video_codecs and all(c in ("video/H264", "video/rtx") for c in viewer.video_codecs)
            await wait_for(lambda: len(viewer.video_frames) >= 30, 20, "idle video")
            await link_known(edge, viewer, avatar)
            seconds = 4.0  # speech's own encoder reaches the full bitrate about 3 s in: the frames after are measured
            accepted = await speak(http, edge.url, viewer, encode(voiced_bursts(seconds)))
            assert accepted["frames"] == seconds * FPS
            await wait_for(lambda: any(e["type"] == "speech_end" for e in viewer.events), 15, "speech end")
            await asyncio.sleep(1.0)  # trailing silence
        finally:
            await viewer.close()

        frames = viewer.video_frames
        arrivals = np.array([f.decoded for f in frames])
        pts = np.array([f.pts for f in frames])
        assert set(np.diff(pts)) == {3600}, "video pts must advance one 25 fps frame at a time"
        assert np.median(np.diff(arrivals)) == pytest.approx(1 / FPS, abs=0.008)

        motion = mouth_motion(avatar, frames)
        start = next(e for e in viewer.events if e["type"] == "speech_start")["frame"]
        end = next(e for e in viewer.events if e["type"] == "speech_end")["frame"]
        idle_before, speaking, idle_after = (
            motion[start - 2 - IDLE_BEFORE_SPEECH : start - 2],
            motion[start:end],
            motion[end + 3 :],
        )
        assert idle_before.max() < 4 and idle_after.max() < 4, "the mouth moved in silence"
        assert np.percentile(speaking, 90) > 12, "speech did not move the mouth"
        # Voiced and silent bursts of 0.25 s: the lips follow them.
        voiced = burst_envelope(seconds, 1 / FPS)[: len(speaking)].astype(bool)
        assert speaking[voiced].mean() > 3 * speaking[~voiced].mean()

        # The audio the viewer heard is the speech, in bursts, at the same instants as the lips.
        audio_pts = np.array([a.pts for a in viewer.audio_frames])
        loud = np.array([a.rms for a in viewer.audio_frames])
        sample_at_start = audio_pts[0] + start * 1920
        heard = loud[(audio_pts >= sample_at_start) & (audio_pts < sample_at_start + seconds * 48000)]
        expected = burst_envelope(seconds, 0.02)[: len(heard)]
        assert np.corrcoef(heard, expected)[0, 1] > 0.8
        assert loud[(audio_pts < sample_at_start - 9600)].max() < 0.01, "audio before the speech must be silent"


async def test_whep_session_interrupt_and_release() -> None:
    async with running_edge() as edge, aiohttp.ClientSession() as http:
        viewer = await connect_viewer(http, edge.url, whep=True)
        avatar = await edge.edge.load_avatar("default")
        await wait_for(lambda: len(viewer.video_frames) >= 10, 20, "video over WHEP")
        await link_known(edge, viewer, avatar)
        assert viewer.video_codecs[0] == "video/H264"
        await speak(http, edge.url, viewer, encode(voiced_bursts(8.0)))
        session = edge.edge.sessions[viewer.session_id]
        await wait_for(lambda: session.speaking, 5, "speaking")
        # Speech's own encoder climbs from what the idle loop sent: the mouth is measured at the full bitrate.
        full = edge.config.video.max_bitrate_kbps
        await wait_for(lambda: session.link.snapshot()["sent_kbps"] >= 0.9 * full, 8, "the full bitrate")
        loop = asyncio.get_running_loop()
        async with http.post(f"{edge.url}/sessions/{viewer.session_id}/interrupt", headers=viewer.auth()) as r:
            assert (await r.json())["dropped_utterances"] == 1
        interrupted_at = loop.time()
        async with http.get(f"{edge.url}/sessions/{viewer.session_id}", headers=viewer.auth()) as r:
            state = await r.json()
        assert state["speaking"] is False and state["queued_seconds"] == 0
        await asyncio.sleep(1.0)
        motion = mouth_motion(avatar, viewer.video_frames)
        arrivals = np.array([f.decoded for f in viewer.video_frames])
        before = motion[(arrivals > interrupted_at - 0.8) & (arrivals < interrupted_at)]
        assert before.max() > 12, "the mouth should have been moving before the interrupt"
        # Frames rendered after the interrupt are idle; allow the two already encoded and in flight.
        moving_after = np.flatnonzero(motion[arrivals > interrupted_at] > 4)
        assert moving_after.size == 0 or moving_after.max() < 3, f"mouth still moving: {moving_after}"

        async with http.delete(f"{edge.url}/whep/sessions/{viewer.session_id}") as r:
            assert r.status == 403, "the resource URL alone must not end a session"
        async with http.delete(f"{edge.url}/whep/sessions/{viewer.session_id}", headers=viewer.auth()) as r:
            assert r.status == 200
        assert viewer.session_id not in edge.edge.sessions
        await wait_for(lambda: not session_threads(), 5, "session threads to end")
        tasks = [t for t in asyncio.all_tasks() if viewer.session_id[:8] in t.get_name()]
        assert not tasks, f"tasks left behind: {tasks}"
        await viewer.close()


async def test_websocket_pcm_feed_drives_the_lips() -> None:
    async with running_edge() as edge, aiohttp.ClientSession() as http:
        viewer = await connect_viewer(http, edge.url)
        avatar = await edge.edge.load_avatar("default")
        try:
            await wait_for(lambda: len(viewer.video_frames) >= 10, 20, "idle video")
            await link_known(edge, viewer, avatar)
            rate = 24000  # a typical TTS rate: resampled by the edge
            pcm = s16(voiced_bursts(2.0, rate=rate)).tobytes()
            url = f"{edge.url}/sessions/{viewer.session_id}/stream?token={viewer.token}"
            async with http.ws_connect(url) as ws:
                await ws.send_str(json.dumps({"sample_rate": rate, "format": "s16le", "channels": 1}))
                assert (await ws.receive_json())["type"] == "ready"
                chunk = rate // 10 * 2  # 100 ms, sent in real time like a live TTS
                for offset in range(0, len(pcm), chunk):
                    await ws.send_bytes(pcm[offset : offset + chunk])
                    await asyncio.sleep(0.1)
                await ws.send_str(json.dumps({"type": "end"}))
                assert (await ws.receive_json())["type"] == "ended"
            await wait_for(lambda: any(e["type"] == "speech_end" for e in viewer.events), 10, "speech end")
        finally:
            await viewer.close()
        before, speaking = motion_around_speech_start(avatar, viewer, frames=50)
        assert np.percentile(speaking, 90) > 12 and before.max() < 4


async def test_inference_loss_degrades_to_idle_and_recovers() -> None:
    async with running_edge() as edge, aiohttp.ClientSession() as http:
        viewer = await connect_viewer(http, edge.url)
        avatar = await edge.edge.load_avatar("default")
        port = edge.inference.port
        try:
            await wait_for(lambda: len(viewer.video_frames) >= 10, 20, "idle video")
            await edge.inference.stop()
            health = await health_until(http, edge.url, 503)
            assert health["status"] == "degraded" and "no inference server answers" in health["inference"]["reason"]
            count = len(viewer.video_frames)
            accepted = await speak(http, edge.url, viewer, encode(voiced_bursts(1.0)))
            assert "still mouth" in accepted["warning"], "speech accepted while degraded must say so"
            await asyncio.sleep(1.5)
            assert len(viewer.video_frames) - count >= 30, "the session must keep streaming without inference"
            assert edge.edge.sessions[viewer.session_id].stats.late_frames > 0

            revived = InferenceServer(make_config(server={"port": port}, registry={"preload": ["parametric-mouth"]}))
            await revived.start()
            edge.inference = revived
            assert (await health_until(http, edge.url, 200))["status"] == "ok"
            mark = len(viewer.video_frames)
            assert "warning" not in await speak(http, edge.url, viewer, encode(voiced_bursts(2.0)))
            await asyncio.sleep(3.0)
        finally:
            await viewer.close()
        motion = mouth_motion(avatar, viewer.video_frames)
        assert np.percentile(motion[mark:], 95) > 12, "lip-sync did not resume after the server came back"


@pytest.mark.parametrize("whep", [False, True])
async def test_signaling_errors(whep: bool) -> None:
    async with running_edge(sessions={"max_sessions": 1}) as edge, aiohttp.ClientSession() as http:
        url = edge.url
        if whep:
            async with http.post(f"{url}/whep/default", data="v=0", headers={"Content-Type": "text/plain"}) as r:
                assert r.status == 415
            async with http.post(
                f"{url}/whep/default", data="garbage", headers={"Content-Type": "application/sdp"}
            ) as r:
                assert r.status == 400 and "error" in await r.json()
            async with http.post(
                f"{url}/whep/nobody", data="v=0\r\nm=video 9 UDP 96\r\n", headers={"Content-Type": "application/sdp"}
            ) as r:
                assert r.status == 404 and "no such avatar" in (await r.json())["error"]
        else:
            async with http.post(f"{url}/offer", data="{not json") as r:
                assert r.status == 415, "a cross-site simple POST (text/plain) must not open a session"
            async with http.post(f"{url}/offer", data="{not json", headers={"Content-Type": "application/json"}) as r:
                assert r.status == 400
            async with http.post(f"{url}/offer", json={"sdp": "nonsense", "type": "offer"}) as r:
                assert r.status == 400
            async with http.post(
                f"{url}/offer", json={"sdp": "v=0\r\nm=video", "type": "offer", "avatar": "../etc"}
            ) as r:
                assert r.status == 404
        viewer = await connect_viewer(http, url, whep=whep)
        try:
            async with http.post(f"{url}/offer", json={"sdp": "v=0\r\nm=video 9", "type": "offer"}) as r:
                assert r.status == 503 and r.headers["Retry-After"] == "5"
                assert "server full" in (await r.json())["error"]
            control = f"{url}/sessions/{viewer.session_id}"
            async with http.get(control) as r:
                assert r.status == 403
            async with http.get(control, headers={"Authorization": "Bearer wrong"}) as r:
                assert r.status == 403
            async with http.get(f"{url}/sessions/unknown", headers=viewer.auth()) as r:
                assert r.status == 404
            async with http.post(f"{control}/speech", data=b"\x00not audio at all" * 10, headers=viewer.auth()) as r:
                assert r.status == 422 and "cannot decode audio" in (await r.json())["error"]
            big = b"\x00" * (int(edge.config.sessions.max_speech_mb * 1024 * 1024) + 1)
            async with http.post(f"{control}/speech", data=big, headers=viewer.auth()) as r:
                assert r.status == 413
            async with http.get(control, headers=viewer.auth()) as r:
                assert r.status == 200 and (await r.json())["session_id"] == viewer.session_id
        finally:
            await viewer.close()


class SpeakingMicrophone(MediaStreamTrack):
    """A browser microphone stand-in: speech-like audio, 20 ms frames, paced in real time."""

    kind = "audio"

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self._pcm = s16(voiced_bursts(seconds, rate=48000))
        self._index = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        loop = asyncio.get_running_loop()
        self._start = self._start or loop.time()
        await asyncio.sleep(max(0.0, self._start + self._index * 0.02 - loop.time()))
        chunk = self._pcm[self._index * 960 : (self._index + 1) * 960]
        if chunk.size < 960:
            chunk = np.zeros(960, np.int16)
        frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = 48000, self._index * 960, fractions.Fraction(1, 48000)
        self._index += 1
        return frame


async def test_microphone_echo_mode_moves_the_lips_and_stats_flow() -> None:
    async with running_edge() as edge, aiohttp.ClientSession() as http:
        viewer = await connect_viewer(http, edge.url, microphone=SpeakingMicrophone(2.0))
        avatar = await edge.edge.load_avatar("default")
        try:
            await wait_for(lambda: any(e["type"] == "speech_end" for e in viewer.events), 15, "echoed speech")
        finally:
            await viewer.close()
        _, speaking = motion_around_speech_start(avatar, viewer, frames=40)  # the mic speaks at once
        assert np.percentile(speaking, 90) > 12
        stats = [e for e in viewer.events if e["type"] == "stats"]
        assert stats and stats[-1]["stats"]["fps"] > 0 and stats[-1]["stats"]["frames_sent"] > 0
        assert {"encode", "composite", "inference_rtt"} <= set(stats[-1]["stats"]["stages_ms"])


async def test_picture_loss_gets_a_keyframe_and_a_vanished_viewer_is_released() -> None:
    async with running_edge() as edge, aiohttp.ClientSession() as http:
        viewer = await connect_viewer(http, edge.url)
        await wait_for(lambda: len(viewer.video_frames) >= 15, 20, "video")
        pc = edge.edge.peer(viewer.session_id).connection
        sender = next(t.sender for t in pc.getTransceivers() if t.kind == "video")
        await sender._handle_rtcp_packet(RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=1, media_ssrc=sender._ssrc))
        asked_at = viewer.video_frames[-1].pts
        await wait_for(lambda: any(pts > asked_at for pts in viewer.keyframe_pts), 2, "keyframe after PLI")
        first_pts = viewer.video_frames[0].pts
        answered = min(pts for pts in viewer.keyframe_pts if pts > asked_at)
        assert (answered - first_pts) // 3600 < 40, "the keyframe came from the PLI, not the 2 s GOP"

        await viewer.close()  # the viewer goes away without DELETE
        await wait_for(lambda: not edge.edge.sessions, 10, "the session to be released")
        await wait_for(lambda: not session_threads(), 5, "session threads to end")


async def test_offer_never_connected_times_out() -> None:
    async with running_edge(sessions={"connect_timeout_s": 0.5}) as edge, aiohttp.ClientSession() as http:
        pc = RTCPeerConnection()
        pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        async with http.post(f"{edge.url}/offer", json={"sdp": pc.localDescription.sdp, "type": "offer"}) as r:
            assert r.status == 200
        await pc.close()  # never applies the answer
        assert len(edge.edge.sessions) == 1
        await wait_for(lambda: not edge.edge.sessions, 5, "the unconnected session to end")
