"""The run: services up, idle memory measured, then levels of 1, 2, 4 ... sessions all speaking at once."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import numpy as np

from benchmarks.e2e.analysis import analyse, median
from benchmarks.e2e.clients import connect_clients, speak_and_interrupt
from benchmarks.e2e.script import SpeechScript
from benchmarks.e2e.services import MODEL, ProcessMeter, Services, model_lookahead, settle_rss_mb
from benchmarks.kit.collector import collector_paused
from benchmarks.kit.mouth import MouthMeter
from benchmarks.kit.viewer import Viewer
from lipstream.timebase import FRAME_SECONDS
from media_server.avatars.bundled import ensure_bundled_avatar
from media_server.avatars.store import FrameStore, LoadedAvatar

log = logging.getLogger(__name__)

MAX_LATE_PCT = 1.0
FRAME_COUNTS = ("expected", "missing", "late_at_client", "server_late_frames", "server_speaking_frames")


@dataclass(frozen=True)
class Options:
    quick: bool
    max_sessions: int
    seconds: float


@dataclass(frozen=True)
class Measured:
    """Everything a run measured, for `report.summarise`."""

    options: Options
    levels: list[dict[str, Any]]
    memory: dict[str, Any]
    lookahead: int
    avatar: LoadedAvatar
    load_before: float  # the machine's 1-minute load average as the run started


async def idle_memory(
    http: aiohttp.ClientSession,
    services: Services,
    meter: ProcessMeter,
    clients: list[Viewer],
    most: int,
    mouth: MouthMeter,
) -> dict[str, Any]:
    """Edge RSS with 0, 1 and `most` idle sessions, before any speech: an utterance's feature buffers,
    once freed, stay in the allocator's heap and would be counted against the sessions that follow."""
    rss = {0: await settle_rss_mb(lambda: meter.rss_mb("edge"))}
    for count in sorted({1, most}):
        await connect_clients(http, services.url, clients, count, mouth)
        rss[count] = await settle_rss_mb(lambda: meter.rss_mb("edge"))
    per_session = (rss[most] - rss[1]) / (most - 1) if most > 1 else rss[1] - rss[0]
    return {
        "base": round(rss[0], 1),
        "per_session": round(per_session, 2),
        "idle_sessions": {str(count): round(value, 1) for count, value in rss.items()},
    }


async def run_level(
    http: aiohttp.ClientSession,
    services: Services,
    meter: ProcessMeter,
    clients: list[Viewer],
    sessions: int,
    utterance: SpeechScript,
    mouth: MouthMeter,
) -> dict[str, Any]:
    """Bring the clients up to `sessions`, then all of them speak at once (staggered within a second)."""
    await connect_clients(http, services.url, clients, sessions, mouth)
    rng = np.random.default_rng(sessions)
    delays = [(i / sessions + rng.uniform(0, FRAME_SECONDS), rng.uniform(0, FRAME_SECONDS)) for i in range(sessions)]
    rss_before = meter.rss_mb("edge")
    cpu_before, wall_before = meter.cpu_seconds(), time.monotonic()
    with collector_paused():
        runs = await asyncio.gather(
            *(speak_and_interrupt(http, c, utterance, delay) for c, delay in zip(clients, delays, strict=True))
        )
    wall = time.monotonic() - wall_before
    cpu = {name: 100 * (spent - cpu_before[name]) / wall for name, spent in meter.cpu_seconds().items()}
    per_session = [analyse(run, utterance, mouth) for run in runs]
    bad = sum(s["server_late_frames"] + s["missing"] + s["late_at_client"] for s in per_session)
    speaking = sum(max(s["server_speaking_frames"], s["expected"]) for s in per_session)
    late_pct = 100 * bad / speaking
    log.info(
        "%d sessions: %.2f %% late or missing, CPU edge %.0f %% inference %.0f %% clients %.0f %%",
        sessions,
        late_pct,
        cpu["edge"],
        cpu["inference"],
        cpu["clients"],
    )
    return {
        "sessions": sessions,
        "late_frame_pct": round(late_pct, 3),
        "holds": late_pct <= MAX_LATE_PCT,
        "frames": {key: sum(s[key] for s in per_session) for key in FRAME_COUNTS},
        "cpu_pct": {name: round(value, 1) for name, value in cpu.items()},
        "server_cpu_pct_per_session": round((cpu["edge"] + cpu["inference"]) / sessions, 1),
        "edge_rss_mb_before": round(rss_before, 1),
        "edge_rss_mb_after": round(meter.rss_mb("edge"), 1),
        "speech_to_lips_frames": median([s["speech_to_lips_frames"] for s in per_session]),
        "interrupt_to_idle_frames": median([s["interrupt"]["frames"] for s in per_session]),
        "av_offset_ms": {
            axis: median([s["av_offset_ms"][axis] for s in per_session]) for axis in per_session[0]["av_offset_ms"]
        },
        "per_session": per_session,
    }


def session_levels(max_sessions: int, quick: bool) -> list[int]:
    """1, 2, 4, 6, 8 ... up to max_sessions (quick: 1 and 2)."""
    levels = [1, 2] if quick else [1, 2, *range(4, max_sessions + 1, 2)]
    levels = [n for n in levels if n <= max_sessions]
    if not quick and levels[-1] != max_sessions:
        levels.append(max_sessions)
    return levels


async def run_bench(options: Options) -> Measured:
    """Every level up to the first that does not hold; the services and clients are gone when it returns."""
    load_before = os.getloadavg()[0]
    levels = session_levels(options.max_sessions, options.quick)
    utterance = SpeechScript.build(options.seconds)
    directory = await asyncio.get_running_loop().run_in_executor(None, ensure_bundled_avatar)
    avatar = await asyncio.get_running_loop().run_in_executor(None, FrameStore().get, directory)
    mouth = MouthMeter(avatar)
    services = Services(max_sessions=levels[-1] + 1)
    clients: list[Viewer] = []
    results: list[dict[str, Any]] = []
    async with aiohttp.ClientSession() as http:
        try:
            await services.start(http)
            lookahead = await model_lookahead(services.inference_target, MODEL)
            meter = ProcessMeter(
                {"edge": services.pid("edge"), "inference": services.pid("inference"), "clients": os.getpid()}
            )
            memory = await idle_memory(http, services, meter, clients, levels[-1], mouth)
            while len(clients) > 1:
                await clients.pop().close(http)
            for sessions in levels:
                results.append(await run_level(http, services, meter, clients, sessions, utterance, mouth))
                if not results[-1]["holds"]:
                    break
        finally:
            await asyncio.gather(*(c.close(http) for c in clients), return_exceptions=True)
            services.stop()
    return Measured(options, results, memory, lookahead, avatar, load_before)
