"""The services under test, each in its own child process, and the meter of their CPU and memory."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import grpc
import psutil

from benchmarks.e2e import BenchError
from inference_service.client import wait_until_serving
from lipstream.lifecycle import free_port
from protos.lipsync.v1 import lipsync_pb2 as pb
from protos.lipsync.v1 import lipsync_pb2_grpc as pb_grpc
from signaling.server import INFERENCE_START_TIMEOUT_S

MODEL = "parametric-mouth"  # the model the inference service preloads and the bench measures
EDGE_START_TIMEOUT_S = 60.0


# Every client of a bench comes from this one address: the edge's per-address limit on new
# sessions (30 a minute, 10 at once) protects it from the public, and would stop any bench.
ONE_CLIENT_ADDRESS = {
    "LIPSTREAM_EDGE_HTTP__SESSIONS_PER_MINUTE": "100000",
    "LIPSTREAM_EDGE_HTTP__SESSION_BURST": "1000",
}


def _child_log_level() -> str:
    """The children log warnings and errors only, unless this process logs at DEBUG."""
    level = logging.getLogger().getEffectiveLevel()
    return logging.getLevelName(level if level <= logging.DEBUG else max(level, logging.WARNING))


class Services:
    """`lipstream serve`, taken apart: the inference service and the edge, each in its own process.

    The edge runs `workers` processes behind its port; with `edge_source`, it runs the code of that
    checkout (its PYTHONPATH), so two versions can be measured side by side.
    """

    def __init__(self, max_sessions: int, workers: int = 1, edge_source: Path | None = None) -> None:
        self.max_sessions = max_sessions
        self.workers = workers
        self.edge_source = edge_source
        self.inference_target = ""
        self.url = ""
        self._children: dict[str, subprocess.Popen] = {}

    def _spawn(self, name: str, arguments: list[str], env: dict[str, str], cwd: Path | None = None) -> subprocess.Popen:
        command = [sys.executable, "-m", "lipstream.cli", "--log-level", _child_log_level(), *arguments]
        child = subprocess.Popen(command, env={**os.environ, **env}, cwd=cwd)
        self._children[name] = child
        return child

    async def start(self, http: aiohttp.ClientSession, edge_env: dict[str, str] | None = None) -> None:
        """The inference service, then the edge (`url`), with `edge_env` on top of the bench's environment."""
        inference_port = free_port()
        self.inference_target = f"127.0.0.1:{inference_port}"
        self._spawn(
            "inference",
            ["inference", "--host", "127.0.0.1", "--port", str(inference_port)],
            {
                "LIPSTREAM_INFERENCE_SERVER__METRICS_PORT": "null",
                "LIPSTREAM_INFERENCE_REGISTRY__PRELOAD": f"[{MODEL}]",
            },
        )
        await self._until_started("inference", wait_until_serving(self.inference_target, INFERENCE_START_TIMEOUT_S))
        self.url = await self.add_edge(http, "edge", edge_env or {})

    async def add_edge(self, http: aiohttp.ClientSession, name: str, edge_env: dict[str, str]) -> str:
        """Another edge process over the same inference service (a bench comparing two configurations); its URL."""
        edge_port = free_port()
        arguments = ["edge", "--port", str(edge_port), "--inference", self.inference_target]
        env = {"LIPSTREAM_EDGE_SESSIONS__MAX_SESSIONS": str(self.max_sessions), **ONE_CLIENT_ADDRESS, **edge_env}
        if self.workers > 1:  # a checkout from before workers existed knows no such flag
            arguments += ["--workers", str(self.workers)]
        if self.edge_source is not None:  # `python -m` looks in its working directory first
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(self.edge_source), os.environ.get("PYTHONPATH")]))
        edge = self._spawn(name, arguments, env, cwd=self.edge_source)
        url = f"http://127.0.0.1:{edge_port}"
        await self._until_started(name, self._edge_healthy(http, edge, url))
        return url

    async def _until_started(self, name: str, ready: Awaitable[None]) -> None:
        try:
            await ready
        except (TimeoutError, grpc.aio.AioRpcError) as exc:
            raise BenchError(f"the {name} service did not start: {exc}") from exc

    async def _edge_healthy(self, http: aiohttp.ClientSession, edge: subprocess.Popen, url: str) -> None:
        """GET /health until it says ok; the child has no other way to say it listens."""
        deadline = time.monotonic() + EDGE_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if edge.poll() is not None:
                raise BenchError(f"the edge exited with code {edge.returncode} during start-up")
            try:
                async with http.get(f"{url}/health") as response:
                    if response.status == 200 and (await response.json())["status"] == "ok":
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)
        raise TimeoutError(f"no healthy edge at {url} within {EDGE_START_TIMEOUT_S:g} s")

    def pid(self, name: str) -> int:
        return self._children[name].pid

    def stop(self) -> None:
        for child in self._children.values():
            child.terminate()
        for child in self._children.values():
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


async def model_lookahead(target: str, model: str) -> int:
    """The model's declared audio look-ahead, as the inference tier reports it."""
    async with grpc.aio.insecure_channel(target) as channel:
        reply = await pb_grpc.LipSyncStub(channel).ListModels(pb.ListModelsRequest(), timeout=10)
    for entry in reply.models:
        if entry.id == model:
            return int(entry.layout.lookahead_frames)
    raise BenchError(f"the inference service does not list model '{model}'")


class ProcessMeter:
    """CPU seconds and resident memory of the edge, the inference service and this (client) process."""

    def __init__(self, pids: dict[str, int]) -> None:
        self._processes = {name: psutil.Process(pid) for name, pid in pids.items()}

    def cpu_seconds(self) -> dict[str, float]:
        return {name: sum(p.cpu_times()[:2]) for name, p in self._processes.items()}

    def rss_mb(self, name: str) -> float:
        return self._processes[name].memory_info().rss / 2**20


async def settle_rss_mb(rss_mb: Callable[[], float], tolerance_mb: float = 1.0, timeout_s: float = 15.0) -> float:
    """RSS once it stops moving (the edge loads the default avatar in the background at start-up)."""
    deadline = time.monotonic() + timeout_s
    previous = rss_mb()
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        current = rss_mb()
        if abs(current - previous) < tolerance_mb:
            return current
        previous = current
    return previous
