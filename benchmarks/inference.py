"""`lipstream bench inference`: throughput, latency and batching of a real server process, per protocol.

The server runs in its own process (as in production) on a free port; N
client streams each keep one frame in flight for S seconds. Runs are repeated
with batching on (config defaults) and off (max_batch 1), and with each
protocol asked for (lipsync.v1 StreamInfer, KServe v2 ModelStreamInfer to the
model's compact variant, both through the edge client's own wire code), in the
same process tree and the same minute, so their ratios are meaningful on a noisy machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import psutil

from inference_service.client import WIRES, wait_until_serving
from inference_service.config import load_inference_config
from lipstream.lifecycle import free_port
from protos.lipsync.v1 import lipsync_pb2 as pb

# The replaced system's exchange: float32 input [6,320,320] + output [3,320,320].
OLD_WIRE_BYTES_PER_FRAME = (6 + 3) * 320 * 320 * 4


def _start_server(model: str, batching: bool, port: int) -> subprocess.Popen:
    env = dict(os.environ)
    env.update(
        {
            "LIPSTREAM_INFERENCE_REGISTRY__PRELOAD": f"[{model}]",
            "LIPSTREAM_INFERENCE_SERVER__METRICS_PORT": "null",
        }
    )
    if not batching:
        env["LIPSTREAM_INFERENCE_BATCHING__MAX_BATCH"] = "1"
    command = [
        sys.executable,
        "-m",
        "lipstream.cli",
        "--log-level",
        "WARNING",
        "inference",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    return subprocess.Popen(command, env=env)


def _frame(model: str, crop_size: int, audio_shape: tuple[int, ...], rng: np.random.Generator) -> pb.FrameRequest:
    import cv2

    coarse = rng.integers(40, 216, (6, 6, 3), dtype=np.uint8)
    bgr = cv2.resize(coarse, (crop_size, crop_size), interpolation=cv2.INTER_LINEAR)
    audio = rng.uniform(-4, 4, audio_shape).astype(np.float16)
    return pb.FrameRequest(
        model=model,
        compact=pb.CompactInput(
            crop=cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420).tobytes(),
            crop_format=pb.IMAGE_FORMAT_I420,
            audio=audio.tobytes(),
        ),
    )


async def _run_streams(
    server: psutil.Process, port: int, protocol: str, template: pb.FrameRequest, streams: int, seconds: float
) -> dict:
    latencies: list[float] = []
    compute_per_frame: list[float] = []
    batches: list[int] = []
    wire: list[int] = []
    errors = 0
    async with grpc.aio.insecure_channel(
        f"127.0.0.1:{port}",
        options=[("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)],
    ) as channel:
        protocol_wire = WIRES[protocol](channel)
        warm = protocol_wire.open()
        await warm.write(protocol_wire.request(template))
        await warm.read()
        await warm.done_writing()

        async def one_stream() -> None:
            nonlocal errors
            call = protocol_wire.open()
            request = protocol_wire.request(template)  # one frame in flight: the same message each time
            deadline = time.perf_counter() + seconds
            while time.perf_counter() < deadline:
                sent = time.perf_counter()
                await call.write(request)
                reply: Any = await call.read()
                latencies.append(time.perf_counter() - sent)
                result = protocol_wire.answer(reply).result
                if result.HasField("error"):
                    errors += 1
                    continue
                batches.append(result.timings.batch_size)
                compute_per_frame.append(result.timings.compute_us / 1e6 / result.timings.batch_size)
                wire.append(request.ByteSize() + reply.ByteSize())
            await call.done_writing()

        started, cpu_before = time.perf_counter(), server.cpu_times()
        await asyncio.gather(*(one_stream() for _ in range(streams)))
        elapsed, cpu_after = time.perf_counter() - started, server.cpu_times()
    server_cpu_s = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
    lat_ms = np.array(latencies) * 1000
    compute_ms = float(np.median(compute_per_frame) * 1000) if compute_per_frame else 0.0
    p50 = float(np.percentile(lat_ms, 50))
    return {
        "frames": len(latencies),
        "errors": errors,
        "frames_per_s": len(latencies) / elapsed,
        "latency_ms": {"p50": p50, "p99": float(np.percentile(lat_ms, 99))},
        "mean_batch": float(np.mean(batches)) if batches else 0.0,
        "wire_bytes_per_frame": int(np.median(wire)) if wire else 0,
        "compute_ms_per_frame": compute_ms,
        # CPU the server process spent per frame, serving included: robust to a busy machine, unlike times.
        "server_cpu_ms_per_frame": server_cpu_s * 1000 / max(1, len(latencies)),
        # For one stream with one frame in flight, this is the serving overhead.
        "overhead_ms": p50 - compute_ms * (float(np.mean(batches)) if batches else 1.0),
    }


async def _bench_model(
    model: str, stream_counts: list[int], seconds: float, protocols: list[str], rounds: int
) -> list[dict]:
    spec = next(s for s in load_inference_config(None).models if s.id == model)
    template = _frame(model, spec.crop_size, spec.audio_shape, np.random.default_rng(0))
    runs = []
    for batching in (True, False):
        port = free_port()
        process = _start_server(model, batching, port)
        try:
            await wait_until_serving(f"127.0.0.1:{port}", 300)
            server = psutil.Process(process.pid)
            for streams in stream_counts:
                # Protocols take turns on one server, `rounds` times: each round's ratio is measured within
                # seconds, so a busy machine's drift over the minute weighs on both sides alike.
                for round_ in range(rounds):
                    for protocol in protocols:
                        result = await _run_streams(server, port, protocol, template, streams, seconds)
                        run: dict[str, Any] = {"model": model, "protocol": protocol, "streams": streams}
                        run.update(batching=batching, round=round_, **result)
                        run["wire_ratio_vs_float32"] = result["wire_bytes_per_frame"] / OLD_WIRE_BYTES_PER_FRAME
                        print(json.dumps(run), file=sys.stderr)
                        runs.append(run)
        finally:
            process.terminate()
            process.wait(timeout=30)
    return runs


RATIOS = ("overhead_ratio", "p50_ratio", "server_cpu_ratio", "frames_per_s_ratio")


def compare_protocols(runs: list[dict], baseline: str = "lipsync") -> list[dict]:
    """Each non-baseline protocol's run against the baseline's of the same model, streams, batching and round."""
    key = ("model", "streams", "batching", "round")
    base = {tuple(run[k] for k in key): run for run in runs if run["protocol"] == baseline}
    comparisons = []
    for run in runs:
        reference = base.get(tuple(run[k] for k in key))
        if run["protocol"] == baseline or reference is None:
            continue
        comparisons.append(
            {
                **{k: run[k] for k in key},
                "protocol": run["protocol"],
                "overhead_ratio": run["overhead_ms"] / reference["overhead_ms"] if reference["overhead_ms"] else None,
                "p50_ratio": run["latency_ms"]["p50"] / reference["latency_ms"]["p50"],
                "server_cpu_ratio": run["server_cpu_ms_per_frame"] / reference["server_cpu_ms_per_frame"],
                "frames_per_s_ratio": run["frames_per_s"] / reference["frames_per_s"],
                "wire_bytes_difference": run["wire_bytes_per_frame"] - reference["wire_bytes_per_frame"],
            }
        )
    return comparisons


def summarise(comparisons: list[dict]) -> list[dict]:
    """Per model, streams, batching and protocol: each ratio's median over the rounds, and its range."""
    groups: dict[tuple, list[dict]] = {}
    for comparison in comparisons:
        key = tuple(comparison[k] for k in ("model", "streams", "batching", "protocol"))
        groups.setdefault(key, []).append(comparison)
    summary = []
    for (model, streams, batching, protocol), group in groups.items():
        entry: dict = {"model": model, "streams": streams, "batching": batching, "protocol": protocol}
        entry["rounds"] = len(group)
        for ratio in RATIOS:
            values = [c[ratio] for c in group if c[ratio] is not None]
            entry[ratio] = (
                {"median": float(np.median(values)), "min": min(values), "max": max(values)} if values else None
            )
        entry["wire_bytes_difference"] = max(c["wire_bytes_difference"] for c in group)
        summary.append(entry)
    return summary


def run_bench(
    models: list[str], stream_counts: list[int], seconds: float, protocols: list[str], rounds: int = 1
) -> dict:
    load_before = os.getloadavg()
    runs: list[dict] = []
    for model in models:
        runs.extend(asyncio.run(_bench_model(model, stream_counts, seconds, protocols, rounds)))
    comparisons = compare_protocols(runs)
    return {
        "bench": "inference",
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_average": {"start": load_before, "end": os.getloadavg()},  # the machine is shared
        },
        "old_wire_bytes_per_frame": OLD_WIRE_BYTES_PER_FRAME,
        "seconds_per_run": seconds,
        "protocols": protocols,
        "rounds": rounds,
        "runs": runs,
        "protocol_comparison": comparisons,
        "protocol_summary": summarise(comparisons),
    }


def _handler(args: argparse.Namespace) -> int:
    models = [m for m in args.model.split(",") if m]
    known = {spec.id for spec in load_inference_config(None).models}
    unknown = [m for m in models if m not in known]
    if unknown:
        print(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}", file=sys.stderr)
        return 2
    protocols = [p for p in args.protocol.split(",") if p]
    unknown = [p for p in protocols if p not in WIRES]
    if unknown or not protocols:
        print(f"unknown protocol(s) {', '.join(unknown)}; known: {', '.join(WIRES)}", file=sys.stderr)
        return 2
    streams = [int(n) for n in args.streams.split(",")]
    report = run_bench(models, streams, args.seconds, protocols, args.rounds)
    text = json.dumps(report, indent=2)
    if args.json:
        Path(args.json).write_text(text + "\n")
    print(text)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("inference", help="inference service throughput, latency, batching")
    parser.add_argument("--model", default="parametric-mouth,synthetic-unet", help="comma-separated model ids")
    parser.add_argument("--streams", default="1,4,16", help="comma-separated concurrent stream counts")
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each run")
    parser.add_argument(
        "--protocol", default="lipsync", help="comma-separated: lipsync (lipsync.v1), kserve (KServe v2), or both"
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="protocols take turns this many times per stream count (ratios' spread)"
    )
    parser.add_argument("--json", help="write the results here")
    parser.set_defaults(handler=_handler)
