"""`lipstream serve`'s inference service: a child process that is started, watched and restarted.

The child dies with this process (the kernel signals it), is restarted with backoff when it
exits or stops answering health checks for `hung_after_s`, and listens on the same port
again, so sessions reconnect by themselves and their lips move again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from inference_service.client import wait_until_serving
from lipstream.lifecycle import die_with_parent
from signaling.supervision import keep_alive

log = logging.getLogger(__name__)

PROBE_INTERVAL_S = 1.0


class InferenceChildFailed(RuntimeError):
    """The child could not be started (it exited, or never became SERVING)."""


class InferenceChild:
    def __init__(self, command: Sequence[str], target: str, start_timeout_s: float, hung_after_s: float) -> None:
        self._command = list(command)
        self._target = target
        self._start_timeout_s = start_timeout_s
        self._hung_after_s = hung_after_s
        self._process: asyncio.subprocess.Process | None = None
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    async def start(self) -> None:
        """Spawn the child and return once it serves; InferenceChildFailed if it exits or times out first."""
        process = await asyncio.create_subprocess_exec(*self._command, preexec_fn=die_with_parent)
        self._process = process
        ready = asyncio.ensure_future(wait_until_serving(self._target, self._start_timeout_s))
        exited = asyncio.ensure_future(process.wait())
        try:
            await asyncio.wait({ready, exited}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (ready, exited):
                task.cancel()
        if exited.done() and not exited.cancelled():
            raise InferenceChildFailed(f"the inference service exited during start-up (exit code {process.returncode})")
        try:
            ready.result()
        except (TimeoutError, grpc.aio.AioRpcError) as exc:
            raise InferenceChildFailed(f"the inference service did not start: {exc}") from exc

    async def supervise(self) -> None:
        """Runs until cancelled: restart the child whenever it exits or hangs."""
        await keep_alive("inference service", self._down, self.start, InferenceChildFailed, self._restarted)

    async def _down(self) -> str:
        reason = await self._until_down()
        await self._kill()  # a hung one is still there
        return reason

    def _restarted(self) -> None:
        self.restarts += 1
        log.info("inference service restarted (pid %s)", self.pid)

    async def _until_down(self) -> str:
        """Why the child is down: it exited, or it failed every health check for `hung_after_s`."""
        process = self._process
        assert process is not None, "start() first"
        exited = asyncio.ensure_future(process.wait())
        failing_s = 0.0
        try:
            async with grpc.aio.insecure_channel(self._target) as channel:
                health = health_pb2_grpc.HealthStub(channel)
                while not exited.done():
                    try:
                        reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=PROBE_INTERVAL_S)
                        serving = reply.status == health_pb2.HealthCheckResponse.SERVING
                    except grpc.aio.AioRpcError:
                        serving = False
                    failing_s = 0.0 if serving else failing_s + PROBE_INTERVAL_S
                    if failing_s >= self._hung_after_s:
                        return f"did not answer for {self._hung_after_s:g} s"
                    await asyncio.wait({exited}, timeout=PROBE_INTERVAL_S)
            return f"exited (code {process.returncode})"
        finally:
            exited.cancel()

    async def _kill(self) -> None:
        process = self._process
        if process is not None and process.returncode is None:
            process.kill()
            await process.wait()

    async def stop(self, grace_s: float = 10.0) -> None:
        process = self._process
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), grace_s)
        except TimeoutError:
            await self._kill()
