"""The edge's own view of a fault: GET /health, and each session's state, polled with the time of each answer.

/health answers 503 while the edge's inference monitor finds no server; a session's state says
whether its inference stream is open (`inference_connected`) and counts its late frames (shown
with a still mouth), which tells the edge's reconnection apart from what the viewers see.
"""

from __future__ import annotations

import asyncio
from typing import NamedTuple

import aiohttp

from benchmarks.kit.viewer import Viewer

POLL_S = 0.1
SESSION_EVERY = 5  # session states every 5th poll (0.5 s)
TIMEOUT_S = 2.0
NO_ANSWER = 0  # the status recorded when the edge did not answer in time


class HealthAnswer(NamedTuple):
    at: float  # event-loop time the answer came
    status: int


class SessionAnswer(NamedTuple):
    at: float
    viewer: int
    inference_connected: bool | None  # None: no answer
    late_frames: int


class HealthWatch:
    """Polls /health every POLL_S (and the viewers' sessions every SESSION_EVERY polls) from `start` to `close`."""

    def __init__(self, http: aiohttp.ClientSession, url: str, viewers: list[Viewer]) -> None:
        self._http, self._url, self._viewers = http, url, viewers
        self.answers: list[HealthAnswer] = []
        self.sessions: list[SessionAnswer] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._poll(), name="health-watch")

    async def _status(self, timeout: aiohttp.ClientTimeout) -> int:
        try:
            async with self._http.get(f"{self._url}/health", timeout=timeout) as response:
                await response.read()
                return response.status
        except (aiohttp.ClientError, TimeoutError):
            return NO_ANSWER

    async def _session(self, number: int, viewer: Viewer, timeout: aiohttp.ClientTimeout) -> SessionAnswer:
        loop = asyncio.get_running_loop()
        url = f"{self._url}/sessions/{viewer.session_id}"
        try:
            async with self._http.get(url, headers=viewer.auth(), timeout=timeout) as response:
                state = await response.json()
            return SessionAnswer(loop.time(), number, bool(state["inference_connected"]), state["stats"]["late_frames"])
        except (aiohttp.ClientError, TimeoutError, KeyError):
            return SessionAnswer(loop.time(), number, None, -1)

    async def _poll(self) -> None:
        loop = asyncio.get_running_loop()
        timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
        polls = 0
        while True:
            status = await self._status(timeout)
            self.answers.append(HealthAnswer(loop.time(), status))
            if polls % SESSION_EVERY == 0:
                for number, viewer in enumerate(self._viewers):
                    self.sessions.append(await self._session(number, viewer, timeout))
            polls += 1
            await asyncio.sleep(POLL_S)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
