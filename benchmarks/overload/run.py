"""The run: twice the viewers the edge carries arrive and speak; who gets in, at what frame rate, when it recovers.

Viewers arrive `arrive_every_s` apart. One that is refused (503) tries again after the
`Retry-After` the edge gave, as a well-behaved client does, while the load lasts; one that
is admitted speaks at once, until the load ends. Then every viewer hangs up (DELETE) and a
new viewer tries every `RETRY_S` until the edge admits it: the recovery.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from benchmarks.e2e import BenchError
from benchmarks.e2e.services import ONE_CLIENT_ADDRESS, ProcessMeter, Services
from benchmarks.kit.speech import encode, syllables
from benchmarks.kit.viewer import Viewer, ViewerError, connect_viewer
from benchmarks.soak.cycles import speak

log = logging.getLogger(__name__)

RETRY_S = 0.5  # between the recovery's tries, and a refused viewer's when the edge names no Retry-After
FIRST_FRAME_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class Options:
    viewers: int
    max_sessions: int
    arrive_every_s: float
    load_s: float  # from the first arrival to the end of the load
    recovery_timeout_s: float
    quick: bool

    def edge_environment(self) -> dict[str, str]:
        """What the bench changes in the edge's configuration (reported in the JSON): the per-address limit."""
        return ONE_CLIENT_ADDRESS


@dataclass(frozen=True)
class Attempt:
    """One try to open a session, on the bench's clock (seconds from the first arrival)."""

    viewer: int
    at_s: float
    status: int  # 200 admitted, else the edge's answer
    reason: str


@dataclass
class Admitted:
    viewer: int
    client: Viewer
    admitted_s: float
    speech_from_s: float = 0.0
    state: dict[str, Any] = field(default_factory=dict)  # GET /sessions/{id} as the load ended


@dataclass
class Measured:
    options: Options
    load_before: float
    started: float  # loop time of the first arrival
    attempts: list[Attempt] = field(default_factory=list)
    admitted: list[Admitted] = field(default_factory=list)
    load_end_s: float = 0.0
    recovered_after_s: float | None = None
    cpu_pct: dict[str, float] = field(default_factory=dict)


def _reason(exc: ViewerError) -> str:
    """The edge's words for a refusal: the `error` of the JSON body the viewer quoted."""
    body = str(exc).split(": ", 1)[-1]
    try:
        return str(json.loads(body)["error"])
    except (ValueError, KeyError, TypeError):
        return body


async def _join(http: aiohttp.ClientSession, base: str, index: int, measured: Measured, stop_at: float) -> None:
    """One viewer: try until admitted or the load ends; once in, speak until it ends."""
    loop = asyncio.get_running_loop()
    await asyncio.sleep(index * measured.options.arrive_every_s)
    while loop.time() < stop_at:
        at = loop.time() - measured.started
        try:
            client = await connect_viewer(http, base, keep=lambda image: image[:1, :1].copy())
        except ViewerError as exc:
            if exc.status not in (429, 503):
                raise
            measured.attempts.append(Attempt(index, at, exc.status, _reason(exc)))
            await asyncio.sleep(min(exc.retry_after_s or RETRY_S, max(0.0, stop_at - loop.time())))
            continue
        measured.attempts.append(Attempt(index, at, 200, "admitted"))
        admitted = Admitted(index, client, at)
        measured.admitted.append(admitted)
        await client.wait_frame(0, FIRST_FRAME_TIMEOUT_S)
        speech = encode(syllables(max(1.0, stop_at - loop.time()), seed=index))
        admitted.speech_from_s = loop.time() - measured.started
        await speak(http, client, speech)
        return


async def _state(http: aiohttp.ClientSession, client: Viewer) -> dict[str, Any]:
    async with http.get(f"{client.base}/sessions/{client.session_id}", headers=client.auth()) as response:
        if response.status != 200:
            raise BenchError(f"GET /sessions answered {response.status}: {await response.text()}")
        return dict(await response.json())


async def _recover(http: aiohttp.ClientSession, base: str, measured: Measured) -> None:
    """After the load: how long until a new viewer is admitted."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + measured.options.recovery_timeout_s
    while loop.time() < deadline:
        try:
            client = await connect_viewer(http, base)
        except ViewerError as exc:
            if exc.status not in (429, 503):
                raise
            measured.attempts.append(Attempt(-1, loop.time() - measured.started, exc.status, _reason(exc)))
            await asyncio.sleep(RETRY_S)
            continue
        measured.recovered_after_s = loop.time() - measured.started - measured.load_end_s
        measured.attempts.append(Attempt(-1, loop.time() - measured.started, 200, "admitted"))
        await client.close(http)
        return


async def run_overload(options: Options) -> Measured:
    """The services, the load, the recovery; everything is gone when it returns."""
    loop = asyncio.get_running_loop()
    services = Services(max_sessions=options.max_sessions)
    async with aiohttp.ClientSession() as http:
        measured = Measured(options, os.getloadavg()[0], 0.0)
        try:
            await services.start(http)
            meter = ProcessMeter(
                {"edge": services.pid("edge"), "inference": services.pid("inference"), "clients": os.getpid()}
            )
            cpu_before = meter.cpu_seconds()
            measured.started = loop.time()
            stop_at = measured.started + options.load_s
            await asyncio.gather(*(_join(http, services.url, i, measured, stop_at) for i in range(options.viewers)))
            await asyncio.sleep(max(0.0, stop_at - loop.time()))
            measured.load_end_s = loop.time() - measured.started
            measured.cpu_pct = {
                name: round(100 * (spent - cpu_before[name]) / measured.load_end_s, 1)
                for name, spent in meter.cpu_seconds().items()
            }
            for admitted in measured.admitted:
                admitted.state = await _state(http, admitted.client)
            await asyncio.gather(*(a.client.close(http) for a in measured.admitted))
            log.info("load over: %d admitted; recovery", len(measured.admitted))
            await _recover(http, services.url, measured)
        finally:
            await asyncio.gather(*(a.client.close() for a in measured.admitted), return_exceptions=True)
            services.stop()
    return measured
