"""Paced 25 fps streams through a real `lipstream inference` process, at each stream count.

Each stream is what an edge's session sends: one frame every 40 ms on lipsync.v1's StreamInfer,
the next sent on time (at once if it is late). A stream count is sustained when every stream
keeps 25 fps and the p99 of frame latency is under 40 ms, a frame's whole budget at 25 fps.
Counts go up until one is not sustained (more streams only make it worse) or time runs out.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import yaml

from benchmarks.gpu import GpuBenchError
from benchmarks.gpu.setup import Setup
from inference_service.client import WIRES, wait_until_serving
from lipstream.lifecycle import free_port
from protos.lipsync.v1 import lipsync_pb2 as pb

FPS = 25.0
BUDGET_MS = 40.0
SUSTAINED_FPS = 0.98 * FPS


def frame(model: str, size: int, audio_shape: tuple[int, ...]) -> pb.FrameRequest:
    """A smooth I420 crop and a speech-like window, built with numpy alone (no OpenCV on a bare GPU machine)."""
    rng = np.random.default_rng(0)
    coarse = rng.integers(40, 216, (3, 8, 8)).astype(np.uint8)
    luma = np.kron(coarse[0], np.ones((size // 8, size // 8), np.uint8))
    chroma = [np.kron(plane, np.ones((size // 16, size // 16), np.uint8)) for plane in coarse[1:]]
    i420 = np.concatenate([luma.ravel(), *(plane.ravel() for plane in chroma)])
    audio = rng.uniform(-4, 4, audio_shape).astype(np.float16)
    compact = pb.CompactInput(crop=i420.tobytes(), crop_format=pb.IMAGE_FORMAT_I420, audio=audio.tobytes())
    return pb.FrameRequest(model=model, compact=compact)


def write_config(setup: Setup, precision: str, work: Path, port: int, max_batch: int) -> Path:
    spec = setup.model_spec(precision, work)
    config = {
        "server": {"host": "127.0.0.1", "port": port, "metrics_port": None, "grace_s": 1},
        "runtime": setup.runtime(precision),
        "batching": {"max_batch": max_batch, "queue_size": 1024},
        "registry": {"preload": [spec.id]},
        "models": [spec.model_dump(exclude_none=True)],
    }
    path = work / f"inference-{precision}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


async def _paced(wire: Any, request: Any, seconds: float, latencies: list[float], said: list[str]) -> tuple[int, int]:
    """One stream for `seconds`: (frames answered, errors); the errors' messages go to `said`."""
    call = wire.open()
    frames = errors = 0
    start = time.perf_counter()
    due = start
    while due < start + seconds:
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        sent = time.perf_counter()
        await call.write(request)
        reply = await call.read()
        latencies.append(time.perf_counter() - sent)
        result = wire.answer(reply).result
        if result.HasField("error"):
            errors += 1
            said.append(result.error.message)
        frames += 1
        due += 1 / FPS
    await call.done_writing()
    return frames, errors


async def run_counts(port: int, template: pb.FrameRequest, counts: list[int], seconds: float, deadline: float) -> list:
    results: list[dict[str, Any]] = []
    options = [("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=options) as channel:
        wire = WIRES["lipsync"](channel)
        request = wire.request(template)
        await _paced(wire, request, 0.5, [], [])  # warm-up: the first runs pick kernels
        for count in counts:
            if time.monotonic() + seconds > deadline:
                results.append({"streams": count, "skipped": "out of time"})
                break
            latencies: list[float] = []
            said: list[str] = []
            started = time.perf_counter()
            done = await asyncio.gather(*(_paced(wire, request, seconds, latencies, said) for _ in range(count)))
            elapsed = time.perf_counter() - started
            frames, errors = sum(d[0] for d in done), sum(d[1] for d in done)
            lat_ms = np.array(latencies) * 1000
            result = {
                "streams": count,
                "frames": frames,
                "errors": errors,
                "frames_per_s": frames / elapsed,
                "fps_per_stream": frames / elapsed / count,
                "latency_ms": {"p50": float(np.percentile(lat_ms, 50)), "p99": float(np.percentile(lat_ms, 99))},
                "late_pct": float((lat_ms > BUDGET_MS).mean() * 100),
                "first_error": said[0] if said else None,
            }
            result["sustained"] = sustained(result)
            results.append(result)
            if not result["sustained"]:
                break
    return results


def sustained(result: dict[str, Any]) -> bool:
    return (
        result["errors"] == 0 and result["fps_per_stream"] >= SUSTAINED_FPS and result["latency_ms"]["p99"] < BUDGET_MS
    )


def serve_and_measure(
    setup: Setup, precision: str, work: Path, counts: list[int], seconds: float, max_batch: int, deadline: float
) -> dict[str, Any]:
    """A server for this precision, the stream counts through it, then the server stopped."""
    port = free_port()
    config = write_config(setup, precision, work, port, max_batch)
    spec = setup.model_spec(precision, work)
    command = [sys.executable, "-m", "lipstream.cli", "--log-level", "WARNING", "inference", "--config", str(config)]
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen(command, env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT)
        try:
            try:
                _wait_serving(server, port)
            except Exception as exc:  # noqa: BLE001 - whatever went wrong, the server's own words say more
                log.seek(0)
                said = log.read().decode(errors="replace")[-2000:]
                raise GpuBenchError(f"the inference server did not start ({exc}): {said}") from exc
            template = frame(spec.id, spec.crop_size, spec.audio_shape)
            runs = asyncio.run(run_counts(port, template, counts, seconds, deadline))
        finally:
            server.terminate()
            server.wait(timeout=30)
    return {"max_batch": max_batch, "runs": runs}


def _wait_serving(server: subprocess.Popen, port: int, timeout_s: float = 300) -> None:
    """Until the server says SERVING; at once when it has exited."""
    limit = time.monotonic() + timeout_s
    while True:
        try:
            asyncio.run(wait_until_serving(f"127.0.0.1:{port}", 2))
            return
        except TimeoutError:
            if server.poll() is not None:
                raise RuntimeError(f"it exited with code {server.returncode}") from None
            if time.monotonic() > limit:
                raise
