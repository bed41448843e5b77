"""The soak: services up with the bench's edge settings, a warm-up, the cycles, and the samples around them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from benchmarks.e2e import BenchError
from benchmarks.e2e.services import ONE_CLIENT_ADDRESS, Services
from benchmarks.kit.speech import encode, syllables
from benchmarks.kit.viewer import ViewerError
from benchmarks.soak.cycles import Cycle, run_cycle
from benchmarks.soak.probe import ResourceProbe

log = logging.getLogger(__name__)

MAX_SESSIONS = 6  # the edge's default; the bench keeps it
IDLE_TIMEOUT_S = 120.0  # for every session to be gone and the edge's counts to settle
SETTLE_INTERVAL_S = 1.0
MAX_FAILED_PCT = 5.0  # more failed cycles than this stop the run: something is broken, not leaking


@dataclass(frozen=True)
class Options:
    cycles: int
    warmup: int
    concurrency: int
    sample_every: int
    connect_timeout_s: float
    utterance_s: float
    quick: bool

    def edge_environment(self) -> dict[str, str]:
        """What the bench changes in the edge's configuration, and why (reported in the JSON).

        Unanswered offers are ended sooner than the default 10 s so that they do not hold the
        connecting slots for most of the run; the per-client rate limit (30 a minute) would stop
        a bench that opens every session from one address.
        """
        return {"LIPSTREAM_EDGE_SESSIONS__CONNECT_TIMEOUT_S": f"{self.connect_timeout_s:g}", **ONE_CLIENT_ADDRESS}


@dataclass
class Measured:
    """What `report.summarise` turns into the JSON."""

    options: Options
    load_before: float
    cycles: list[Cycle] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    warmup_end: dict[str, Any] = field(default_factory=dict)  # the edge idle after the warm-up: the baseline
    during: list[dict[str, Any]] = field(default_factory=list)
    final: dict[str, Any] = field(default_factory=dict)  # the edge idle after the last cycle
    seconds: float = 0.0


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """os.environ with `values` while the services start: the children inherit it, nothing else changes."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


async def live_sessions(http: aiohttp.ClientSession, url: str) -> int:
    """Sessions on the edge, from GET /health (which answers 503 while inference is unreachable)."""
    async with http.get(f"{url}/health") as response:
        return int((await response.json())["sessions"])


async def idle_sample(
    http: aiohttp.ClientSession, url: str, probe: ResourceProbe, cycle: int, t0: float
) -> dict[str, Any]:
    """A detailed sample once no session is left and threads, descriptors and sockets hold still for a second."""
    deadline = time.monotonic() + IDLE_TIMEOUT_S
    while await live_sessions(http, url) and time.monotonic() < deadline:
        await asyncio.sleep(SETTLE_INTERVAL_S / 4)
    previous = probe.sample(cycle, 0, t0)
    while time.monotonic() < deadline:
        await asyncio.sleep(SETTLE_INTERVAL_S)
        current = probe.sample(cycle, await live_sessions(http, url), t0)
        if all(current[k] == previous[k] for k in ("threads", "fds", "sockets")) and not current["sessions"]:
            break
        previous = current
    else:
        log.warning("the edge's counts did not settle within %.0f s", IDLE_TIMEOUT_S)
    return probe.sample(cycle, await live_sessions(http, url), t0, detail=True)


class Soak:
    """Workers that take the next cycle number until `stop`, and a sample every `sample_every` cycles."""

    def __init__(self, http: aiohttp.ClientSession, url: str, probe: ResourceProbe, measured: Measured) -> None:
        self.http, self.url, self.probe, self.measured = http, url, probe, measured
        self.audio = encode(syllables(measured.options.utterance_s, seed=7))
        self.client = ResourceProbe(os.getpid())
        self.next_index = 0
        self.started = time.monotonic()

    async def run(self, count: int, record: bool) -> None:
        stop = self.next_index + count
        await asyncio.gather(*(self._worker(stop, record) for _ in range(self.measured.options.concurrency)))

    async def _worker(self, stop: int, record: bool) -> None:
        options, measured = self.measured.options, self.measured
        while self.next_index < stop:
            index, self.next_index = self.next_index, self.next_index + 1
            try:
                cycle = await run_cycle(self.http, self.url, index, self.audio)
            except (BenchError, ViewerError, aiohttp.ClientError) as exc:
                measured.failures.append({"index": index, "error": str(exc) or traceback.format_exc(limit=2)})
                log.warning("cycle %d failed: %s", index, exc)
                if 100 * len(measured.failures) > MAX_FAILED_PCT * max(20, index):
                    raise BenchError(f"{len(measured.failures)} of {index + 1} cycles failed; last: {exc}") from exc
                continue
            if not record:
                continue
            measured.cycles.append(cycle)
            done = len(measured.cycles) + sum(f["index"] >= options.warmup for f in measured.failures)
            if done % options.sample_every == 0:
                point = self.probe.sample(done, await live_sessions(self.http, self.url), self.started)
                point["client_rss_mb"] = round(self.client.process.memory_info().rss / 2**20, 1)
                measured.during.append(point)
                log.info(
                    "%d cycles: edge RSS %.1f MB, %d threads, %d fds, %d sockets",
                    done,
                    point["rss_mb"],
                    point["threads"],
                    point["fds"],
                    point["sockets"]["total"],
                )


async def run_soak(options: Options) -> Measured:
    """Warm-up, baseline, the cycles, the final sample; the services are stopped when it returns."""
    measured = Measured(options, os.getloadavg()[0])
    services = Services(max_sessions=MAX_SESSIONS)
    async with aiohttp.ClientSession() as http:
        try:
            with environment(options.edge_environment()):
                await services.start(http)
            probe = ResourceProbe(services.pid("edge"))
            soak = Soak(http, services.url, probe, measured)
            await soak.run(options.warmup, record=False)
            measured.warmup_end = await idle_sample(http, services.url, probe, 0, soak.started)
            started = time.monotonic()
            await soak.run(options.cycles, record=True)
            measured.seconds = time.monotonic() - started
            done = len(measured.cycles) + sum(f["index"] >= options.warmup for f in measured.failures)
            measured.final = await idle_sample(http, services.url, probe, done, soak.started)
        finally:
            services.stop()
    return measured
