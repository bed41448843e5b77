"""The HTTP surface beyond the happy path: auth, CORS, limits, trickle ICE, metrics, config."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import aiohttp
import pytest
from edge_helpers import running_edge, wait_for

from benchmarks.kit.speech import encode, s16, voiced_bursts
from benchmarks.kit.viewer import Viewer, connect_viewer
from media_server.avatars.bundled import ensure_bundled_avatar
from media_server.speech.audio import AudioTooLongError, PcmFormat


async def test_api_key_guards_session_creation() -> None:
    async with running_edge(http={"api_key": "sesame"}) as edge, aiohttp.ClientSession() as http:
        async with http.post(f"{edge.url}/offer", json={"sdp": "v=0", "type": "offer"}) as r:
            assert r.status == 401 and r.headers["WWW-Authenticate"] == "Bearer"
        async with http.post(
            f"{edge.url}/whep/default",
            data="v=0",
            headers={"Content-Type": "application/sdp", "Authorization": "Bearer wrong"},
        ) as r:
            assert r.status == 401
        async with http.get(f"{edge.url}/avatars") as r:
            assert r.status == 200 and "default" in (await r.json())["avatars"]


async def test_cors_allows_only_configured_origins() -> None:
    async with running_edge(http={"cors_origins": ["https://app.example"]}) as edge, aiohttp.ClientSession() as http:
        preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
        async with http.options(f"{edge.url}/offer", headers=preflight) as r:
            assert r.status == 204
            assert r.headers["Access-Control-Allow-Origin"] == "https://app.example"
            assert "Authorization" in r.headers["Access-Control-Allow-Headers"]
        async with http.get(f"{edge.url}/avatars", headers={"Origin": "https://evil.example"}) as r:
            assert r.status == 200 and "Access-Control-Allow-Origin" not in r.headers
        async with http.get(f"{edge.url}/nope", headers={"Origin": "https://app.example"}) as r:
            assert r.status == 404 and r.headers["Access-Control-Allow-Origin"] == "https://app.example"


async def test_speech_limits_multipart_and_queue() -> None:
    sessions = {"max_speech_seconds": 2.0, "max_queued_utterances": 2}
    async with running_edge(sessions=sessions) as edge, aiohttp.ClientSession() as http:
        viewer = await connect_viewer(http, edge.url)
        url = f"{edge.url}/sessions/{viewer.session_id}/speech"
        try:
            form = aiohttp.FormData()
            form.add_field(
                "audio",
                encode(voiced_bursts(0.5, rate=48000), "ogg", "libopus", rate=48000),
                filename="hello.ogg",
                content_type="audio/ogg",
            )
            async with http.post(url, data=form, headers=viewer.auth()) as r:
                assert r.status == 202, await r.text()
                assert (await r.json())["seconds"] == pytest.approx(0.5, abs=0.03)
            async with http.post(url, data=encode(voiced_bursts(3.0)), headers=viewer.auth()) as r:
                assert r.status == 413 and "2 s limit" in (await r.json())["error"]
            async with http.post(url, data=encode(voiced_bursts(1.0)), headers=viewer.auth()) as r:
                assert r.status == 202
            async with http.post(url, data=encode(voiced_bursts(1.0)), headers=viewer.auth()) as r:
                assert r.status == 429 and "queued" in (await r.json())["error"]
            async with http.post(url, data=b"", headers=viewer.auth()) as r:
                assert r.status == 400
        finally:
            await viewer.close()


async def test_websocket_rejects_bad_streams_and_trickle_ice_patch() -> None:
    async with running_edge() as edge, aiohttp.ClientSession() as http:
        viewer = await connect_viewer(http, edge.url)
        try:
            stream = f"{edge.url}/sessions/{viewer.session_id}/stream"
            async with http.ws_connect(stream) as ws:  # no token
                pass
        except aiohttp.WSServerHandshakeError as exc:
            assert exc.status == 403
        else:
            pytest.fail("a WebSocket without the session token was accepted")
        try:
            async with http.ws_connect(f"{stream}?token={viewer.token}") as ws:
                await ws.send_bytes(b"\x00\x01")
                assert "header first" in (await ws.receive_json())["message"]
            async with http.ws_connect(f"{stream}?token={viewer.token}") as ws:
                await ws.send_str('{"sample_rate": "fast"}')
                assert "bad stream header" in (await ws.receive_json())["message"]

            resource = f"{edge.url}/whep/sessions/{viewer.session_id}"
            fragment = "a=mid:0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host\r\n"
            trickle = {"Content-Type": "application/trickle-ice-sdpfrag"}
            async with http.patch(resource, data=fragment, headers=trickle) as r:
                assert r.status == 403, "the resource URL alone must not add candidates"
            async with http.patch(
                resource, data="a=mid:0", headers={**viewer.auth(), "Content-Type": "text/plain"}
            ) as r:
                assert r.status == 415
            async with http.patch(resource, data=fragment, headers={**viewer.auth(), **trickle}) as r:
                assert r.status == 204 and r.headers["X-Candidates-Added"] == "1"
        finally:
            await viewer.close()


async def test_health_and_metrics_report_sessions_and_frames() -> None:
    async with running_edge() as edge, aiohttp.ClientSession() as http:
        viewer = await connect_viewer(http, edge.url)
        try:
            async with http.get(f"{edge.url}/health") as r:
                health = await r.json()
            assert health["status"] == "ok" and health["sessions"] == 1
            await edge_frames(viewer)
            async with http.get(f"{edge.url}/metrics") as r:
                body = await r.text()
            assert "lipstream_edge_sessions 1.0" in body
            sent = next(line for line in body.splitlines() if line.startswith("lipstream_edge_frames_sent_total"))
            assert float(sent.split()[-1]) >= 10
            assert 'lipstream_edge_stage_seconds_bucket{le="0.0005",stage="encode"}' in body
        finally:
            await viewer.close()


async def edge_frames(viewer: Viewer, count: int = 10) -> None:
    await wait_for(lambda: len(viewer.video_frames) >= count, 20, "video frames")


async def test_concurrent_offers_never_exceed_the_session_limit() -> None:
    async with running_edge(sessions={"max_sessions": 2}) as edge, aiohttp.ClientSession() as http:
        results = await asyncio.gather(*(connect_viewer(http, edge.url) for _ in range(5)), return_exceptions=True)
        viewers = [r for r in results if not isinstance(r, BaseException)]
        refused = [r for r in results if isinstance(r, BaseException)]
        try:
            assert len(viewers) == 2 and len(edge.edge.sessions) == 2
            assert all("server full" in str(error) for error in refused)
        finally:
            for viewer in viewers:
                await viewer.close()


async def test_avatar_at_another_frame_rate_is_refused_in_words(tmp_path: Path) -> None:
    source = await asyncio.to_thread(ensure_bundled_avatar)
    avatars = tmp_path / "avatars"
    shutil.copytree(source, avatars / "fast")
    manifest = avatars / "fast" / "avatar.yaml"
    manifest.write_text(manifest.read_text().replace("fps: 25", "fps: 30"))
    async with running_edge(avatars={"directory": str(avatars)}) as edge, aiohttp.ClientSession() as http:
        async with http.post(
            f"{edge.url}/offer", json={"sdp": "v=0\r\nm=video 9", "type": "offer", "avatar": "fast"}
        ) as r:
            assert r.status == 422 and "30 fps" in (await r.json())["error"]


async def test_live_feed_is_held_to_the_playback_and_capped() -> None:
    sessions = {"live_buffer_seconds": 0.4, "max_speech_seconds": 3.0}
    async with running_edge(sessions=sessions) as edge, aiohttp.ClientSession() as http:
        viewer = await connect_viewer(http, edge.url)
        try:
            session = edge.edge.sessions[viewer.session_id]
            feed = session.live_feed(PcmFormat(16000))
            second = s16(voiced_bursts(1.0)).tobytes()
            with pytest.raises(TimeoutError):  # 2 s of audio at once: far ahead of playback, so it waits
                await asyncio.wait_for(feed.push(second * 2), 0.5)
            utterance = feed.utterance
            assert utterance is not None and utterance.received - utterance.shown > 10
            await feed.end()

            edge.edge.config.sessions.live_buffer_seconds = 60.0  # limits are read as a feed opens
            capped = session.live_feed(PcmFormat(16000))
            with pytest.raises(AudioTooLongError):
                await capped.push(second * 4)
        finally:
            await viewer.close()
