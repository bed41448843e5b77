"""Inside the namespace: for each link rate, one talking session on the adaptive edge and one on a fixed-bitrate one.

Both edges run over one inference service; one session at a time crosses the shaped loopback, so
each has the link to itself. A session: a viewer (an aiortc peer, or the demo page in Chromium)
connects, watches the idle loop for `settle_s`, uploads `speech_s` of speech, and is watched until
it ends; its edge's view of the link (target bitrate, the viewer's estimate, keyframes) is polled
over HTTP (TCP, unshaped) twice a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp

from benchmarks.e2e import BenchError
from benchmarks.e2e.clients import session_state
from benchmarks.e2e.services import Services
from benchmarks.kit.chromium import chromium
from benchmarks.kit.collector import collector_paused
from benchmarks.kit.mouth import MouthMeter
from benchmarks.kit.speech import encode, syllables
from benchmarks.kit.viewer import SessionHandle, Viewer, ViewerError, connect_viewer
from benchmarks.network import netns
from benchmarks.network.browser import CHROMIUM_FLAGS, PageCounts, PageError, page_counts, watching_page
from benchmarks.soak.cycles import speak
from media_server.avatars.bundled import ensure_bundled_avatar
from media_server.avatars.store import FrameStore, LoadedAvatar
from media_server.config import VideoConfig

if TYPE_CHECKING:
    from playwright.async_api import Browser

log = logging.getLogger(__name__)

POLL_S = 0.5
WARM_UP_TIMEOUT_S = 60.0
FIXED_KBPS = VideoConfig().max_bitrate_kbps  # what every session sent before the encoder followed its link


def fixed_bitrate_env(kbps: int = FIXED_KBPS) -> dict[str, str]:
    """An edge whose sessions ignore their link: min = start = max, and the idle loop's top rung only."""
    return {
        "LIPSTREAM_EDGE_VIDEO__MIN_BITRATE_KBPS": str(kbps),
        "LIPSTREAM_EDGE_VIDEO__START_BITRATE_KBPS": str(kbps),
        "LIPSTREAM_EDGE_VIDEO__MAX_BITRATE_KBPS": str(kbps),
        "LIPSTREAM_EDGE_VIDEO__IDLE_RUNGS_KBPS": "[]",
    }


MODES = {"adaptive": {}, "fixed": fixed_bitrate_env()}


VIEWERS = ("aiortc", "chromium")


@dataclass(frozen=True)
class Options:
    quick: bool
    rates_kbps: tuple[int | None, ...]  # None: the loopback unshaped
    speech_s: float
    settle_s: float
    modes: tuple[str, ...] = tuple(MODES)
    viewer: str = "aiortc"


@dataclass
class Talk:
    """One utterance on a watched session, with the edge's polled view of the link (bench clock)."""

    accepted: float  # the speech's 202
    frames: int
    samples: list[dict[str, Any]]  # t, and the session's `stats.network`, from the viewer's connection on
    final_stats: dict[str, Any]
    queue_drops: int


@dataclass
class SessionRun:
    """One session as its viewer received it: an aiortc viewer's frames and packets, or what Chromium counted."""

    mode: str
    rate_kbps: int | None
    session_id: str
    seen: Viewer | PageCounts
    talk: Talk


@dataclass
class Measured:
    options: Options
    avatar: LoadedAvatar
    mouth: MouthMeter
    runs: list[SessionRun] = field(default_factory=list)
    load: list[float] = field(default_factory=list)  # 1-minute load average before each session


async def _poll(
    http: aiohttp.ClientSession, session: SessionHandle, samples: list[dict[str, Any]], final: dict[str, Any]
) -> None:
    """The session's view of its link twice a second, from its viewer's connection on, until cancelled."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            state = await session_state(http, session)
        except (BenchError, aiohttp.ClientError) as exc:
            log.warning("state poll: %s", exc)
        else:
            samples.append({"t": loop.time(), "video_source": state["video_source"], **state["stats"]["network"]})
            final.update(state["stats"])
        await asyncio.sleep(POLL_S)


async def _talk(http: aiohttp.ClientSession, session: SessionHandle, audio: bytes, settle_s: float) -> Talk:
    """A connected session through settle, speech and its end; its link polled all along."""
    loop = asyncio.get_running_loop()
    samples: list[dict[str, Any]] = []
    final: dict[str, Any] = {}
    poll = asyncio.create_task(_poll(http, session, samples, final))
    try:
        await asyncio.sleep(settle_s)
        answer = await speak(http, session, audio)
        accepted = loop.time()
        frames = int(answer["frames"])
        await asyncio.sleep(frames / 25 + 1.0)
        return Talk(accepted, frames, samples, final, netns.shaped_drops())
    finally:
        poll.cancel()


async def one_session(
    http: aiohttp.ClientSession,
    url: str,
    mode: str,
    rate: int | None,
    audio: bytes,
    measured: Measured,
    browser: Browser | None,
) -> SessionRun:
    """One viewer (aiortc, or the demo page in `browser`) through settle, speech and its end, then hung up."""
    settle_s = measured.options.settle_s
    if browser is None:
        viewer = await connect_viewer(http, url, keep=measured.mouth.crop)
        try:
            talk = await _talk(http, viewer, audio, settle_s)
        finally:
            await viewer.close(http)
        return SessionRun(mode, rate, viewer.session_id, viewer, talk)
    async with watching_page(browser, url) as (page, session):
        talk = await _talk(http, session, audio, settle_s)
        return SessionRun(mode, rate, session.session_id, await page_counts(page, session), talk)


async def warm_up(http: aiohttp.ClientSession, url: str, mouth: MouthMeter) -> None:
    """One unmeasured viewer on the unshaped link until its session sends the shared idle loop: the edge has
    encoded the avatar's loop (its first session pays for that, which is not what this bench measures)."""
    loop = asyncio.get_running_loop()
    viewer = await connect_viewer(http, url, keep=mouth.crop)
    try:
        deadline = loop.time() + WARM_UP_TIMEOUT_S
        while (await session_state(http, viewer))["video_source"] != "shared":
            if loop.time() > deadline:
                raise BenchError(f"the edge at {url} sent no shared idle loop within {WARM_UP_TIMEOUT_S:g} s")
            await asyncio.sleep(POLL_S)
    finally:
        await viewer.close(http)


async def run_network(options: Options) -> Measured:
    """Every rate, both modes, one session each; the services are stopped when it returns."""
    if os.environ.get(netns.NAMESPACE_ENV) is None:
        raise BenchError("the network bench runs inside its namespace: start it with `lipstream bench network`")
    loop = asyncio.get_running_loop()
    directory = await loop.run_in_executor(None, ensure_bundled_avatar)
    avatar = await loop.run_in_executor(None, FrameStore().get, directory)
    measured = Measured(options, avatar, MouthMeter(avatar))
    audio = encode(syllables(options.speech_s, seed=13))
    services = Services(max_sessions=2)
    async with aiohttp.ClientSession() as http, contextlib.AsyncExitStack() as stack:
        browser = await stack.enter_async_context(chromium(*CHROMIUM_FLAGS)) if options.viewer == "chromium" else None
        try:
            netns.shape(None)
            await services.start(http)
            urls = {"adaptive": services.url}
            for mode in options.modes:
                if mode != "adaptive":
                    urls[mode] = await services.add_edge(http, f"edge-{mode}", MODES[mode])
            for url in urls.values():
                await warm_up(http, url, measured.mouth)
            with collector_paused():
                for rate in options.rates_kbps:
                    for mode in options.modes:
                        netns.shape(rate)
                        measured.load.append(os.getloadavg()[0])
                        log.info("%s at %s kbit/s", mode, rate or "unlimited")
                        try:
                            run = await one_session(http, urls[mode], mode, rate, audio, measured, browser)
                        except (ViewerError, PageError) as exc:
                            raise BenchError(f"{mode} at {rate or 'unlimited'} kbit/s: {exc}") from exc
                        measured.runs.append(run)
        finally:
            netns.shape(None)
            services.stop()
    return measured
