"""The video clock never waits on inference: a frozen inference server costs moving lips, never frames."""

from __future__ import annotations

import asyncio
import signal

import aiohttp
import numpy as np
from edge_helpers import running_edge, wait_for
from inference_helpers import start_inference_process

from benchmarks.kit.mouth import MouthMeter
from benchmarks.kit.speech import encode, voiced_bursts
from benchmarks.kit.viewer import connect_viewer
from inference_service.client import wait_until_serving
from lipstream.lifecycle import free_port
from lipstream.timebase import FRAME_SECONDS, PTS_PER_FRAME

FREEZE_S = 3.0


async def test_a_frozen_inference_server_costs_moving_lips_never_frames() -> None:
    port = free_port()
    inference = start_inference_process(port)
    try:
        await wait_until_serving(f"127.0.0.1:{port}", 120)
        targets = {"targets": [f"127.0.0.1:{port}"], "backoff_max_s": 0.5}
        async with running_edge(with_inference=False, inference=targets) as edge, aiohttp.ClientSession() as http:
            viewer = await connect_viewer(http, edge.url)
            avatar = await edge.edge.load_avatar("default")
            loop = asyncio.get_running_loop()
            try:
                await wait_for(lambda: len(viewer.video_frames) >= 25, 20, "idle video")
                speech = f"{edge.url}/sessions/{viewer.session_id}/speech"
                async with http.post(speech, data=encode(voiced_bursts(14.0)), headers=viewer.auth()) as r:
                    assert r.status == 202
                await wait_for(lambda: any(e["type"] == "speech_start" for e in viewer.events), 10, "speech")
                await asyncio.sleep(1.0)
                inference.send_signal(signal.SIGSTOP)
                frozen_at = loop.time()
                await asyncio.sleep(FREEZE_S)
                inference.send_signal(signal.SIGCONT)
                back_at = loop.time()
                await asyncio.sleep(5.0)
            finally:
                await viewer.close(http)
    finally:
        inference.send_signal(signal.SIGCONT)
        inference.terminate()
        inference.wait(timeout=20)

    decoded = np.array([f.decoded for f in viewer.video_frames])
    during = decoded[(decoded > frozen_at) & (decoded < back_at)]
    assert during.size >= 0.8 * FREEZE_S / FRAME_SECONDS, f"only {during.size} frames while inference was frozen"
    assert np.diff(decoded[decoded > frozen_at - 1]).max() < 0.5, "the video stalled with the inference server"

    meter = MouthMeter(avatar)
    first = viewer.video_frames[0].pts
    motion = np.array([meter(round((f.pts - first) / PTS_PER_FRAME), meter.crop(f.image)) for f in viewer.video_frames])
    assert (motion[(decoded > back_at) & (decoded < back_at + 5.0)] > 12).any(), "lips did not move again"
