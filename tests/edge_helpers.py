"""A real edge (aiohttp + aiortc) over a real inference server, for the tests; `benchmarks.kit.viewer` watches it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import NamedTuple, TypeVar

import aiohttp
import numpy as np
from aiohttp import web
from inference_helpers import make_config

from benchmarks.kit.mouth import MouthMeter
from benchmarks.kit.speech import encode, voiced_bursts
from benchmarks.kit.viewer import ReceivedVideo, Viewer, connect_viewer
from inference_service.serving.server import InferenceServer
from media_server.avatars.bundled import ensure_bundled_avatar
from media_server.avatars.store import LoadedAvatar
from media_server.config import EdgeConfig
from media_server.edge import Edge
from signaling.access_log import RedactingAccessLogger
from signaling.app import create_app

T = TypeVar("T")


@dataclass
class RunningEdge:
    url: str
    edge: Edge
    inference: InferenceServer | None
    config: EdgeConfig


@asynccontextmanager
async def running_edge(with_inference: bool = True, port: int = 0, **sections: dict) -> AsyncIterator[RunningEdge]:
    """An edge on 127.0.0.1:`port` (0: any) with `sections` over the tests' config, and its inference server."""
    server = None
    if with_inference:
        server = InferenceServer(make_config(registry={"preload": ["parametric-mouth"]}))
        await server.start()
    data: dict = {
        "http": {"host": "127.0.0.1", "port": 0},
        "inference": {"targets": [f"127.0.0.1:{server.port if server else 1}"], "backoff_max_s": 0.5},
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    config = EdgeConfig.model_validate(data)
    await asyncio.to_thread(ensure_bundled_avatar)  # what `lipstream edge` does at start-up
    edge = Edge(config)
    edge.start()
    runner = web.AppRunner(create_app(edge), access_log_class=RedactingAccessLogger)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    port = runner.addresses[0][1]
    handle = RunningEdge(f"http://127.0.0.1:{port}", edge, server, config)
    try:
        yield handle
    finally:
        await runner.cleanup()
        if handle.inference is not None:  # a test may have replaced it
            await handle.inference.stop()


def mouth_motion(avatar: LoadedAvatar, frames: list[ReceivedVideo]) -> np.ndarray:
    """Per received frame: the mouth meter's reading against the idle frame the server would show.

    The received frame's number comes from its pts (3600 per frame at 90 kHz); the first
    decoded frame is frame 0 (the stream starts with a keyframe).
    """
    meter = MouthMeter(avatar)
    first_pts = frames[0].pts
    return np.array([meter(round((f.pts - first_pts) / 3600), meter.crop(f.image)) for f in frames])


IDLE_BEFORE_SPEECH = 25  # frames: the second before speech starts, when the link is known (see `watched_edge`)


def motion_around_speech_start(avatar: LoadedAvatar, viewer: Viewer, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Mouth motion before the first utterance (idle) and over its first `frames` frames."""
    motion = mouth_motion(avatar, viewer.video_frames)
    start = next(e for e in viewer.events if e["type"] == "speech_start")["frame"]
    # Session frame numbers, not list positions: a viewer decodes from its first keyframe on, and
    # frames the link passes over never arrive.
    numbers = np.array([viewer.frame_of(frame.pts) for frame in viewer.video_frames])
    idle = (numbers >= start - 1 - IDLE_BEFORE_SPEECH) & (numbers < start - 1)
    return motion[idle], motion[(numbers >= start) & (numbers < start + frames)]


class Watched(NamedTuple):
    """An edge, an HTTP client, a viewer whose idle video is flowing, and the avatar it shows."""

    edge: RunningEdge
    http: aiohttp.ClientSession
    viewer: Viewer
    avatar: LoadedAvatar


async def link_known(edge: RunningEdge, viewer: Viewer, avatar: LoadedAvatar) -> int:
    """Wait until the session plays the idle loop's top rung, and a second more of it; the number of frames
    received by then. A session starts low, as WebRTC does, and climbs the rungs on its viewer's reports:
    on the loopback, within a few seconds. Tests that measure the picture's quality wait for this."""
    top = round((await edge.edge.idle_loops.ready(avatar))[0].kbps)
    session = edge.edge.session(viewer.session_id)
    await wait_for(lambda: session.state()["stats"]["network"]["idle_rung_kbps"] == top, 20, "the top rung")
    on_top = len(viewer.video_frames)
    await wait_for(lambda: len(viewer.video_frames) > on_top + IDLE_BEFORE_SPEECH, 20, "a second of the top rung")
    return on_top


@asynccontextmanager
async def watched_edge(**sections: dict) -> AsyncIterator[Watched]:
    """A running edge watched by one viewer (hung up at the end; what it received stays to be analysed)."""
    async with running_edge(**sections) as edge, aiohttp.ClientSession() as http:
        viewer = await connect_viewer(http, edge.url)
        try:
            avatar = await edge.edge.load_avatar("default")
            await wait_for(lambda: len(viewer.video_frames) >= 10, 20, "idle video")
            await link_known(edge, viewer, avatar)
            yield Watched(edge, http, viewer, avatar)
        finally:
            await viewer.close()


async def until(probe: Callable[[], Awaitable[T]], accept: Callable[[T], bool], what: str, timeout: float = 5.0) -> T:
    """Ask again (a server, a page's stats, a viewer) until the answer is acceptable; it is returned."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await probe()
        if accept(value):
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}; last value: {value!r}")
        await asyncio.sleep(0.1)


async def wait_for(predicate, timeout: float, what: str) -> None:
    """Wait on a condition the test cannot await directly (frames arriving at a client)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)


async def speak(http: aiohttp.ClientSession, url: str, viewer: Viewer, audio: bytes) -> dict:
    async with http.post(f"{url}/sessions/{viewer.session_id}/speech", data=audio, headers=viewer.auth()) as r:
        assert r.status == 202, await r.text()
        return await r.json()


async def health_until(http: aiohttp.ClientSession, url: str, status: int, timeout_s: float = 5.0) -> dict:
    """GET /health until it answers `status` (the edge refreshes it in the background)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        async with http.get(f"{url}/health") as response:
            if response.status == status or asyncio.get_running_loop().time() > deadline:
                assert response.status == status, await response.text()
                return await response.json()
        await asyncio.sleep(0.2)


class SpeechMotion(NamedTuple):
    """The mouth meter's readings while a viewer's avatar was idle before speech, and while it spoke."""

    idle: np.ndarray
    speaking: np.ndarray


async def talk(http: aiohttp.ClientSession, edge: RunningEdge, seconds: float, timeout_s: float = 20) -> SpeechMotion:
    """A viewer connects, watches the idle avatar, sends `seconds` of voiced bursts and watches it speak."""
    viewer = await connect_viewer(http, edge.url)
    avatar = await edge.edge.load_avatar("default")
    try:
        await wait_for(lambda: len(viewer.video_frames) >= 30, timeout_s, "idle video")
        await link_known(edge, viewer, avatar)
        await speak(http, edge.url, viewer, encode(voiced_bursts(seconds)))
        await wait_for(lambda: any(e["type"] == "speech_end" for e in viewer.events), timeout_s, "speech end")
    finally:
        await viewer.close()
    start = next(e for e in viewer.events if e["type"] == "speech_start")["frame"]
    end = next(e for e in viewer.events if e["type"] == "speech_end")["frame"]
    return SpeechMotion(*motion_around_speech_start(avatar, viewer, frames=end - start))
