"""The phases: the empty edge, S idle sessions, the same S sessions speaking; CPU and memory in each."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.capacity.meter import TreeMeter
from benchmarks.e2e import BenchError
from benchmarks.e2e.clients import FRAME_WAIT_SLACK_S, SETTLE_FRAMES, session_state
from benchmarks.e2e.script import SpeechScript
from benchmarks.e2e.services import Services, settle_rss_mb
from benchmarks.kit.viewer import Viewer, connect_viewer
from lipstream.timebase import FRAME_SECONDS, PTS_PER_FRAME

SPEECH_WAIT_S = 30.0  # for every session to decode its upload and start speaking
SPEECH_SPARE_S = 4.0  # speech left after the measurement, so no session falls silent inside it
COUNTED = ("frames_sent", "speaking_frames", "late_frames", "shared_frames")


@dataclass(frozen=True)
class Options:
    sessions: int
    seconds: float
    workers: int
    edge_source: Path | None


class Phase:
    """CPU of the edge tree and of this process (the clients) over a stretch of wall time."""

    def __init__(self, edge: TreeMeter, inference: TreeMeter) -> None:
        self._meters = {"edge": edge, "inference": inference, "clients": TreeMeter(os.getpid(), children=False)}
        self._edge = edge
        self._started = time.monotonic(), self._readings()

    def _readings(self) -> dict[str, float]:
        return {
            **{name: meter.cpu_seconds() for name, meter in self._meters.items()},
            "edge_loop": self._edge.loop_cpu_seconds(),
        }

    def end(self) -> dict[str, float]:
        wall = time.monotonic() - self._started[0]
        spent = {name: value - self._started[1][name] for name, value in self._readings().items()}
        return {"wall_s": round(wall, 2), **{f"{name}_cpu_pct": 100 * cpu / wall for name, cpu in spent.items()}}


async def measure(edge: TreeMeter, inference: TreeMeter, seconds: float) -> dict[str, Any]:
    phase = Phase(edge, inference)
    await asyncio.sleep(seconds)
    return {**phase.end(), "memory": edge.memory()}


async def connect_counting(http: aiohttp.ClientSession, url: str, clients: list[Viewer], count: int) -> None:
    """`count` viewers that count what they receive without decoding it, each past its first SETTLE_FRAMES."""
    clients.extend([await connect_viewer(http, url, decode=False) for _ in range(count)])
    deadline = time.monotonic() + SETTLE_FRAMES * FRAME_SECONDS + FRAME_WAIT_SLACK_S
    while any(c.video_rtp.newest < SETTLE_FRAMES * PTS_PER_FRAME for c in clients):
        if time.monotonic() > deadline:
            raise BenchError(f"not every viewer received {SETTLE_FRAMES} frames")
        await asyncio.sleep(0.1)


async def counters(http: aiohttp.ClientSession, clients: list[Viewer]) -> list[dict[str, int]]:
    states = await asyncio.gather(*(session_state(http, c) for c in clients))
    return [{key: int(state["stats"].get(key, 0)) for key in COUNTED} for state in states]


def difference(after: list[dict[str, int]], before: list[dict[str, int]]) -> dict[str, int]:
    return {key: sum(a[key] - b[key] for a, b in zip(after, before, strict=True)) for key in COUNTED}


async def health(http: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with http.get(f"{url}/health") as response:
        body: dict[str, Any] = await response.json()
        return body


async def all_speaking(http: aiohttp.ClientSession, clients: list[Viewer]) -> None:
    deadline = time.monotonic() + SPEECH_WAIT_S
    while not all(state["speaking"] for state in await asyncio.gather(*(session_state(http, c) for c in clients))):
        if time.monotonic() > deadline:
            raise BenchError(f"not every session was speaking {SPEECH_WAIT_S:g} s after its upload")
        await asyncio.sleep(0.1)


async def speak(http: aiohttp.ClientSession, client: Viewer, audio: bytes) -> None:
    session = f"{client.base}/sessions/{client.session_id}"
    headers = {**client.auth(), "Content-Type": "audio/wav"}
    async with http.post(f"{session}/speech", data=audio, headers=headers) as response:
        if response.status != 202:
            raise BenchError(f"POST speech answered {response.status}: {await response.text()}")


async def interrupt(http: aiohttp.ClientSession, client: Viewer) -> None:
    async with http.post(f"{client.base}/sessions/{client.session_id}/interrupt", headers=client.auth()):
        pass


async def run_capacity(options: Options) -> dict[str, Any]:
    """Every phase's measurements; the services and clients are gone when it returns."""
    speech = SpeechScript.build(options.seconds + SPEECH_SPARE_S)
    services = Services(options.sessions + 1, options.workers, options.edge_source)
    clients: list[Viewer] = []
    async with aiohttp.ClientSession() as http:
        try:
            await services.start(http)
            edge, inference = TreeMeter(services.pid("edge")), TreeMeter(services.pid("inference"))
            await settle_rss_mb(lambda: sum(entry["rss_mb"] for entry in edge.memory().values()))
            empty = await measure(edge, inference, options.seconds)
            await connect_counting(http, services.url, clients, options.sessions)
            spread = await health(http, services.url)
            before = await counters(http, clients)
            idle = await measure(edge, inference, options.seconds)
            idle["frames"] = difference(await counters(http, clients), before)
            await asyncio.gather(*(speak(http, c, speech.audio) for c in clients))
            await all_speaking(http, clients)  # the uploads' decoding is done: only speaking is measured
            before = await counters(http, clients)
            speaking = await measure(edge, inference, options.seconds)
            speaking["frames"] = difference(await counters(http, clients), before)
            await asyncio.gather(*(interrupt(http, c) for c in clients))
        finally:
            await asyncio.gather(*(c.close(http) for c in clients), return_exceptions=True)
            services.stop()
    return {"phases": {"empty": empty, "idle": idle, "speaking": speaking}, "health_with_sessions": spread}
