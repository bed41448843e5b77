"""A real edge (aiohttp + aiortc) over a real inference server, and a real aiortc viewer."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import aiohttp
import av
import numpy as np
from aiohttp import web
from aiortc import RTCPeerConnection, RTCSessionDescription
from inference_helpers import make_config

from inference_service.serving.server import InferenceServer
from media_server.avatars.bundled import ensure_default_avatar
from media_server.config import EdgeConfig
from media_server.edge import Edge
from signaling.app import create_app


@dataclass
class RunningEdge:
    url: str
    edge: Edge
    inference: InferenceServer | None
    config: EdgeConfig


@asynccontextmanager
async def running_edge(inference: bool = True, **sections: dict) -> AsyncIterator[RunningEdge]:
    server = None
    if inference:
        server = InferenceServer(make_config(registry={"preload": ["parametric-mouth"]}))
        await server.start()
    data: dict = {
        "http": {"host": "127.0.0.1", "port": 0},
        "inference": {"targets": [f"127.0.0.1:{server.port if server else 1}"], "backoff_max_s": 0.5},
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    config = EdgeConfig.model_validate(data)
    await asyncio.to_thread(ensure_default_avatar)  # what `lipstream edge` does at start-up
    edge = Edge(config)
    runner = web.AppRunner(create_app(edge))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    handle = RunningEdge(f"http://127.0.0.1:{port}", edge, server, config)
    try:
        yield handle
    finally:
        await runner.cleanup()
        if handle.inference is not None:  # a test may have replaced it
            await handle.inference.stop()


@dataclass
class Viewer:
    """A browser stand-in: receives and decodes the tracks, keeps what it got."""

    pc: RTCPeerConnection
    session_id: str = ""
    token: str = ""
    video_frames: list[tuple[float, int, np.ndarray]] = field(default_factory=list)  # (arrival, pts, Y plane)
    audio: list[tuple[float, int, np.ndarray]] = field(default_factory=list)  # (arrival, pts, mono s16)
    video_codecs: list[str] = field(default_factory=list)
    keyframe_pts: list[int] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)
    tasks: list[asyncio.Task] = field(default_factory=list)

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.pc.close()


async def _collect_video(track, viewer: Viewer) -> None:
    loop = asyncio.get_running_loop()
    while True:
        frame = await track.recv()
        luma = frame.to_ndarray()[: frame.height] if frame.format.name == "yuv420p" else frame.to_ndarray(format="gray")
        viewer.video_frames.append((loop.time(), frame.pts, luma))
        if frame.key_frame:
            viewer.keyframe_pts.append(frame.pts)


async def _collect_audio(track, viewer: Viewer) -> None:
    loop = asyncio.get_running_loop()
    while True:
        frame: av.AudioFrame = await track.recv()
        samples = frame.to_ndarray()
        channels = len(frame.layout.channels)
        if channels > 1:  # keep the left channel
            samples = samples[0] if frame.format.is_planar else samples.reshape(-1, channels)[:, 0]
        viewer.audio.append((loop.time(), frame.pts, samples.reshape(-1).astype(np.int16)))


async def connect_viewer(
    http: aiohttp.ClientSession, base: str, avatar: str = "default", whep: bool = False, microphone=None
) -> Viewer:
    pc = RTCPeerConnection()
    viewer = Viewer(pc)
    pc.addTransceiver("video", direction="recvonly")
    if microphone is not None:
        pc.addTrack(microphone)
    else:
        pc.addTransceiver("audio", direction="recvonly")
    if not whep:
        channel = pc.createDataChannel("stats")
        channel.on("message", lambda message: viewer.events.append(json.loads(message)))

    @pc.on("track")
    def on_track(track) -> None:
        collect = _collect_video if track.kind == "video" else _collect_audio
        viewer.tasks.append(asyncio.create_task(collect(track, viewer)))

    await pc.setLocalDescription(await pc.createOffer())
    if whep:
        async with http.post(
            f"{base}/whep/{avatar}", data=pc.localDescription.sdp, headers={"Content-Type": "application/sdp"}
        ) as response:
            assert response.status == 201, await response.text()
            answer = await response.text()
            viewer.session_id = response.headers["X-Session-Id"]
            viewer.token = response.headers["X-Session-Token"]
            assert response.headers["Location"] == f"/whep/sessions/{viewer.session_id}"
    else:
        async with http.post(
            f"{base}/offer", json={"sdp": pc.localDescription.sdp, "type": "offer", "avatar": avatar}
        ) as response:
            assert response.status == 200, await response.text()
            body = await response.json()
            answer, viewer.session_id, viewer.token = body["sdp"], body["session_id"], body["token"]
    await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    video = next(t for t in pc.getTransceivers() if t.kind == "video")
    viewer.video_codecs = [codec.mimeType for codec in video._codecs]  # what the answer negotiated
    return viewer


async def wait_for(predicate, timeout: float, what: str) -> None:
    """Wait on a condition the test cannot await directly (frames arriving at a client)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)
