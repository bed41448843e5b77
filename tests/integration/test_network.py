"""A viewer on a slow link: the encoder follows it, and a viewer's storm of keyframe requests is paced.

The shaped-link test makes a network namespace and rate-limits its loopback (`lipstream bench network`
does, for one rate and one session): that needs root, as CI has. Without root it fails, saying so.
Its viewer is an aiortc peer, then the demo page in Chromium, each with its own feedback (REMB, RTCP).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
from pathlib import Path

import aiohttp
import pytest
from edge_helpers import running_edge, wait_for

from benchmarks.kit.speech import encode, voiced_bursts
from benchmarks.kit.viewer import connect_viewer
from lipstream.cli import main

LINK_KBPS = 600
SETTLED_S = 5  # seconds into speech
MIN_KEYFRAME_INTERVAL_MS = 500


@pytest.mark.parametrize("viewer", ["aiortc", "chromium"])
def test_on_a_600_kbit_link_the_encoder_falls_below_it_and_the_viewer_keeps_decoding(
    viewer: str, tmp_path: Path
) -> None:
    if os.geteuid() != 0:
        pytest.fail("this test shapes a network namespace's loopback: run it as root (CI does)")
    out = tmp_path / "network.json"
    argv = ["bench", "network", "--rates", str(LINK_KBPS), "--seconds", "10", "--adaptive-only", "--json", str(out)]
    argv += ["--viewer", viewer]
    assert main(argv) == 0
    (entry,) = json.loads(out.read_text())["rates"]
    session = entry["adaptive"]
    series = session["series"]
    # Speech's encoder probes up from the idle rung's rate until the link pushes back (a second or
    # three in), and probes again now and then; from the settling time on, it keeps under the link.
    settled = [target for t, target in zip(series["t_s"], series["target_kbps"], strict=True) if t >= SETTLED_S]
    assert settled and statistics.median(settled) < LINK_KBPS, series
    assert sum(target < LINK_KBPS for target in settled) >= 0.75 * len(settled), series
    assert statistics.median(series["sent_kbps"]) < LINK_KBPS, series
    # The viewer decoded all along: never two seconds without a frame, and most frames.
    assert session["longest_gap_ms"] < 2000, session
    assert session["decoded_fps"] > 10, session
    assert session["audio_packets"]["received"] > 0.9 * session["audio_packets"]["expected"], session


async def test_a_storm_of_keyframe_requests_gets_keyframes_at_the_rate_limit_not_one_each() -> None:
    video = {"min_keyframe_interval_ms": MIN_KEYFRAME_INTERVAL_MS}
    async with running_edge(video=video) as edge, aiohttp.ClientSession() as http:
        viewer = await connect_viewer(http, edge.url)
        session = f"{edge.url}/sessions/{viewer.session_id}"
        try:
            await wait_for(lambda: len(viewer.video_frames) >= 25, 30, "idle video")
            async with http.post(f"{session}/speech", data=encode(voiced_bursts(8.0)), headers=viewer.auth()) as r:
                assert r.status == 202
            await wait_for(lambda: any(e["type"] == "speech_start" for e in viewer.events), 10, "speech start")
            await asyncio.sleep(0.5)  # the session's own encoder runs: each keyframe is one it makes
            receiver = next(t.receiver for t in viewer.pc.getTransceivers() if t.kind == "video")
            assert viewer.video_rtp.ssrc is not None
            before = await network_stats(http, session, viewer.auth())
            storm_s, started = 4.0, asyncio.get_running_loop().time()
            while asyncio.get_running_loop().time() - started < storm_s:
                await receiver._send_rtcp_pli(viewer.video_rtp.ssrc)  # what a viewer with a broken picture sends
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.3)  # the last requests arrive
            after = await network_stats(http, session, viewer.auth())
            frames = len(viewer.video_frames)
            await wait_for(lambda: len(viewer.video_frames) >= frames + 10, 10, "video after the storm")
        finally:
            await viewer.close(http)

    requests = after["keyframe_requests"] - before["keyframe_requests"]
    keyframes = after["keyframes_sent"] - before["keyframes_sent"]
    assert requests >= 100, requests
    paced = storm_s * 1000 / MIN_KEYFRAME_INTERVAL_MS  # 8 in 4 s
    assert paced - 2 <= keyframes <= paced + 2, f"{keyframes} keyframes for {requests} requests"


async def network_stats(http: aiohttp.ClientSession, session: str, auth: dict[str, str]) -> dict:
    async with http.get(session, headers=auth) as response:
        assert response.status == 200
        return (await response.json())["stats"]["network"]
