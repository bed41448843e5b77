"""Whether the inference tier answers, checked in the background so every reader gets it at once.

`/health` and speech requests read the last answer; a transition is logged once.
"""

from __future__ import annotations

import asyncio
import logging

from inference_service.client import InferenceClient

log = logging.getLogger(__name__)


class InferenceMonitor:
    def __init__(self, client: InferenceClient, interval_s: float) -> None:
        self._client = client
        self._interval_s = interval_s
        self.reachable = False
        self.reason = "not checked yet"
        self.checked = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._watch(), name="inference-health")

    async def check(self) -> bool:
        reachable = await self._client.reachable(timeout_s=self._interval_s)
        if self.checked and reachable != self.reachable:
            log.log(
                logging.INFO if reachable else logging.WARNING,
                "inference tier %s: %s",
                "reachable again" if reachable else "unreachable",
                self._client.target,
            )
            if reachable:
                self._client.servers_back()
        self.reachable = reachable
        self.reason = "" if reachable else f"no inference server answers at {self._client.target}"
        self.checked = True
        return reachable

    async def current(self) -> bool:
        """The last answer, or a fresh one when none came yet."""
        return self.reachable if self.checked else await self.check()

    async def _watch(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(self._interval_s)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
