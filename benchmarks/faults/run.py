"""The sequence: services up, two viewers speaking long speech, then each fault in turn, watched until lips move."""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field

import aiohttp
import numpy as np

from benchmarks.e2e import BenchError
from benchmarks.e2e.analysis import VideoSeries, first_moving, moving_threshold
from benchmarks.e2e.clients import connect_clients
from benchmarks.e2e.services import Services
from benchmarks.faults.health import HealthAnswer, HealthWatch, SessionAnswer
from benchmarks.faults.injector import InferenceFaults
from benchmarks.kit.collector import collector_paused
from benchmarks.kit.mouth import MouthMeter
from benchmarks.kit.speech import encode, syllables
from benchmarks.kit.viewer import Viewer
from benchmarks.soak.cycles import speak
from media_server.avatars.bundled import ensure_bundled_avatar
from media_server.avatars.store import FrameStore, LoadedAvatar

log = logging.getLogger(__name__)

VIEWERS = 2
POLL_S = 0.1
FAULTS = ("sigkill", "sigstop")


@dataclass(frozen=True)
class Options:
    quick: bool
    down_s: float  # how long the inference stays dead (before the restart) or stopped
    lead_s: float  # speech before the moving threshold is set
    control_s: float  # then watched before the first fault, for comparison
    recovery_timeout_s: float  # after the inference is back, how long to wait for moving lips
    tail_s: float  # watched after the lips moved again, before the next fault
    speech_s: float  # longer than everything above together: the speech goes on through every fault


@dataclass
class Fault:
    """One fault's times on the viewers' clock (event-loop time); `end` closes its observation window."""

    name: str
    injected: float
    back: float = 0.0  # SIGCONT sent, or the restarted service answering SERVING
    restarted: float | None = None  # SIGKILL: the restart issued (the service is back at `back`)
    end: float = 0.0
    inference_cpu_pct: float = 0.0  # of the inference process from `back` to `end`: is it computing mouths?
    probe: str = ""  # after `end`, a frame with an edge's budget sent straight to the service: its answer


@dataclass
class Measured:
    """What `analysis` and `report` need."""

    options: Options
    avatar: LoadedAvatar
    mouth: MouthMeter
    viewers: list[Viewer]
    speech_starts: list[int]  # session frame of each viewer's speech
    speech_frames: int
    thresholds: list[float]  # per viewer: motion above which the mouth is open
    faults: list[Fault] = field(default_factory=list)
    health: list[HealthAnswer] = field(default_factory=list)
    sessions: list[SessionAnswer] = field(default_factory=list)  # the viewers' sessions as the edge reports them
    load_before: float = 0.0


def _moving_since(viewer: Viewer, mouth: MouthMeter, since: float, threshold: float) -> bool:
    """Whether a frame decoded after `since` shows an open mouth (newest first: the check runs often)."""
    for received in reversed(viewer.video_frames):
        if received.decoded < since:
            return False
        if mouth(viewer.frame_of(received.pts), received.image) > threshold:
            return True
    return False


async def lips_again(measured: Measured, since: float, timeout_s: float) -> bool:
    """Until every viewer has seen an open mouth after `since`; False if one has not within `timeout_s`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        if all(
            _moving_since(v, measured.mouth, since, t)
            for v, t in zip(measured.viewers, measured.thresholds, strict=True)
        ):
            return True
        await asyncio.sleep(POLL_S)
    return False


async def inject(name: str, faults: InferenceFaults, measured: Measured) -> Fault:
    """One fault, from its injection to the end of its observation window."""
    loop, options = asyncio.get_running_loop(), measured.options
    fault = Fault(name, loop.time())
    log.info("%s of the inference service (pid %d)", name, faults.pid)
    if name == "sigkill":
        faults.kill()
        await asyncio.sleep(options.down_s)
        fault.restarted = loop.time()
        await faults.serving(faults.restart())
    else:
        faults.stop()
        await asyncio.sleep(options.down_s)
        faults.resume()
    fault.back = loop.time()
    cpu_back = faults.cpu_seconds()
    moved = await lips_again(measured, fault.back, options.recovery_timeout_s)
    log.info("inference back; lips %s", "moving again" if moved else "still after the recovery timeout")
    await asyncio.sleep(options.tail_s)
    fault.end = loop.time()
    fault.inference_cpu_pct = round(100 * (faults.cpu_seconds() - cpu_back) / (fault.end - fault.back), 1)
    fault.probe = await faults.probe()
    log.info("inference CPU %.0f %% since it was back; a probe frame: %s", fault.inference_cpu_pct, fault.probe)
    return fault


async def _speaking(http: aiohttp.ClientSession, viewers: list[Viewer], options: Options) -> tuple[list[int], int]:
    """Every viewer starts the long speech; the session frame each starts at, and its length in frames."""
    audio = encode(syllables(options.speech_s, seed=11))
    answers = [await speak(http, viewer, audio) for viewer in viewers]
    return [int(a["starts_at_frame"]) for a in answers], int(answers[0]["frames"])


def _thresholds(viewers: list[Viewer], mouth: MouthMeter, starts: list[int]) -> list[float]:
    """Per viewer, from its idle frames before the speech; BenchError if its lips never moved in the lead."""
    thresholds = []
    for viewer, start in zip(viewers, starts, strict=True):
        series = VideoSeries.of(viewer, mouth)
        threshold = moving_threshold(series, start)
        first = min(int(np.searchsorted(series.frame, start)), series.frame.size - 1)
        if first_moving(series, float(series.packet[first]), threshold) is None:
            raise BenchError(f"session {viewer.session_id[:8]}: the mouth did not move before any fault")
        thresholds.append(threshold)
    return thresholds


async def run_faults(options: Options) -> Measured:
    """Both faults in turn; the services, restarted ones included, are stopped when it returns."""
    load_before = os.getloadavg()[0]
    directory = await asyncio.get_running_loop().run_in_executor(None, ensure_bundled_avatar)
    avatar = await asyncio.get_running_loop().run_in_executor(None, FrameStore().get, directory)
    mouth = MouthMeter(avatar)
    services = Services(max_sessions=VIEWERS + 1)
    viewers: list[Viewer] = []
    health: HealthWatch | None = None
    faults: InferenceFaults | None = None
    async with aiohttp.ClientSession() as http:
        try:
            await services.start(http)
            faults = InferenceFaults(services.pid("inference"), services.inference_target)
            await connect_clients(http, services.url, viewers, VIEWERS, mouth)
            health = HealthWatch(http, services.url, viewers)
            health.start()
            starts, frames = await _speaking(http, viewers, options)
            # No collection in this process from here: its pause (~0.1 s with the frames kept) would
            # hold every packet's arrival and look like a gap at the viewers.
            with collector_paused():
                await asyncio.sleep(options.lead_s)
                thresholds = _thresholds(viewers, mouth, starts)
                measured = Measured(
                    options, avatar, mouth, viewers, starts, frames, thresholds, load_before=load_before
                )
                await asyncio.sleep(options.control_s + 0.5)  # the thresholds' computation held this loop
                for name in FAULTS:
                    measured.faults.append(await inject(name, faults, measured))
            if any(v.last_frame >= s + frames for v, s in zip(viewers, starts, strict=True)):
                raise BenchError("the speech ended before the last fault's window: make it longer")
        finally:
            if health is not None:
                await health.close()
            await asyncio.gather(*(v.close(http) for v in viewers), return_exceptions=True)
            services.stop()
            if faults is not None:
                faults.close()
    if health is not None:
        measured.health, measured.sessions = health.answers, health.sessions
    return measured
