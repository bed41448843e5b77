"""Faults in the inference child: SIGKILL and a restart on the same port, SIGSTOP and SIGCONT.

The bench starts the children itself (`benchmarks.e2e.services`), so nothing supervises them: a
killed inference service is restarted here, with the very command line and environment the
first one ran with (read from /proc through psutil), and the time that takes is measured.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess

import grpc
import numpy as np
import psutil

from benchmarks.e2e import BenchError
from benchmarks.e2e.services import MODEL
from inference_service.client import InferenceClient, wait_until_serving
from protos.lipsync.v1 import lipsync_pb2 as pb

RESTART_TIMEOUT_S = 120.0
PROBE_BUDGET_S = 0.15  # what an edge's look-ahead gives a frame (pipeline_frames x 40 ms, roughly)
STOP_WAIT_S = 10.0
POLL_S = 0.02


class InferenceFaults:
    """The inference child the edge talks to, and the faults done to it; `close` stops any restarted one."""

    def __init__(self, pid: int, target: str) -> None:
        process = psutil.Process(pid)
        self.pid = pid
        self.target = target
        self._command = process.cmdline()
        self._environment = process.environ()
        self._restarted: list[subprocess.Popen] = []

    def kill(self) -> None:
        """SIGKILL: the process and its sockets are gone at once; the edge's streams break."""
        os.kill(self.pid, signal.SIGKILL)

    def stop(self) -> None:
        """SIGSTOP: the process and its sockets stay, nothing answers (a hung server)."""
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def restart(self) -> subprocess.Popen:
        """The same command again, on the same port (a supervisor's restart)."""
        child = subprocess.Popen(self._command, env=self._environment)
        self._restarted.append(child)
        self.pid = child.pid
        return child

    async def _listening(self, child: subprocess.Popen) -> None:
        """Until the port takes connections: a gRPC channel opened before would wait out its reconnect backoff."""
        host, port = self.target.rsplit(":", 1)
        while child.poll() is None:
            try:
                _, writer = await asyncio.open_connection(host, int(port))
            except OSError:
                await asyncio.sleep(POLL_S)
                continue
            writer.close()
            await writer.wait_closed()
            return

    async def serving(self, child: subprocess.Popen) -> None:
        """Until the restarted service answers grpc.health.v1 SERVING; BenchError if it exits or never does."""
        watch = asyncio.create_task(self._until_serving(child))
        while not watch.done():
            if child.poll() is not None:
                watch.cancel()
                raise BenchError(f"the restarted inference service exited with code {child.returncode}")
            await asyncio.wait({watch}, timeout=0.05)
        try:
            watch.result()
        except TimeoutError as exc:
            raise BenchError(f"the restarted inference service did not serve: {exc}") from exc

    async def _until_serving(self, child: subprocess.Popen) -> None:
        await asyncio.wait_for(self._listening(child), RESTART_TIMEOUT_S)
        await wait_until_serving(self.target, RESTART_TIMEOUT_S)

    def cpu_seconds(self) -> float:
        return float(sum(psutil.Process(self.pid).cpu_times()[:2]))

    async def probe(self) -> str:
        """One frame with an edge's budget, straight to the service: what it answers now ("ok", or its error)."""
        async with InferenceClient([self.target]) as client:
            try:
                layout = next(m.layout for m in await client.list_models() if m.id == MODEL)
                crop = bytes(layout.crop_size * layout.crop_size * 3 // 2)  # black I420
                audio = np.zeros(tuple(layout.audio_shape), np.float16).tobytes()
                request = pb.FrameRequest(
                    frame_id=1,
                    model=MODEL,
                    budget_us=int(PROBE_BUDGET_S * 1e6),
                    compact=pb.CompactInput(crop=crop, crop_format=pb.IMAGE_FORMAT_I420, audio=audio),
                )
                result = (await client.infer([request], timeout_s=5.0))[0]
            except grpc.aio.AioRpcError as exc:
                return f"{exc.code().name}: {exc.details()}"
        return f"error {result.error.code}: {result.error.message}" if result.HasField("error") else "ok"

    def close(self) -> None:
        """Resume a stopped process (so it can act on SIGTERM) and stop every restarted one."""
        try:
            os.kill(self.pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
        for child in self._restarted:
            child.terminate()
        for child in self._restarted:
            try:
                child.wait(timeout=STOP_WAIT_S)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
