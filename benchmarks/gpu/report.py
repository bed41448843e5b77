"""The bench's JSON: the machine (load, GPU, torch), each precision's batches and streams, and fp16 against fp32."""

from __future__ import annotations

import importlib.util
import os
import platform
from dataclasses import asdict
from typing import Any

from inference_service.runtime import gpu_info


def machine(load_before: tuple[float, float, float]) -> dict[str, Any]:
    torch: dict[str, Any] = {"installed": importlib.util.find_spec("torch") is not None}
    if torch["installed"]:
        import torch as torch_module

        torch.update(version=torch_module.__version__, cuda=torch_module.version.cuda)
        if torch_module.cuda.is_available():
            torch["device"] = torch_module.cuda.get_device_name(0)
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average": {"start": list(load_before), "end": list(os.getloadavg())},  # the machine may be shared
        "gpus": asdict(gpu_info.query()),
        "torch": torch,
    }


def sustained_sessions(streams: dict[str, Any]) -> int:
    """The most streams that kept 25 fps with p99 under 40 ms (0 when not even one did)."""
    return max((run["streams"] for run in streams["runs"] if run.get("sustained")), default=0)


def compare(precisions: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """fp16 over fp32: frames/s ratio per batch size, and the sessions each sustains."""
    if not {"fp32", "fp16"} <= set(precisions):
        return None
    fp32, fp16 = precisions["fp32"], precisions["fp16"]
    by_batch = {run["batch"]: run for run in fp32["batches"]}
    return {
        "frames_per_s_ratio_by_batch": {
            str(run["batch"]): run["frames_per_s"] / by_batch[run["batch"]]["frames_per_s"]
            for run in fp16["batches"]
            if run["batch"] in by_batch
        },
        "sustained_sessions": {"fp32": fp32["sustained_sessions"], "fp16": fp16["sustained_sessions"]},
    }


def lines(result: dict[str, Any]) -> list[str]:
    """A short human summary of the JSON."""
    out = [f"{result['model']} on {result['device']} ({result['backend']}, provider {result['provider']})"]
    for precision, measured in result["precisions"].items():
        batches = ", ".join(
            f"b{run['batch']} {run['frames_per_s']:.1f} fps p50 {run['latency_ms']['p50']:.1f} "
            f"p99 {run['latency_ms']['p99']:.1f} ms"
            for run in measured["batches"]
        )
        out.append(f"  {precision} batches: {batches}")
        streams = ", ".join(
            f"{run['streams']}: {run['fps_per_stream']:.1f} fps/stream p99 {run['latency_ms']['p99']:.1f} ms"
            if "frames" in run
            else f"{run['streams']}: {run['skipped']}"
            for run in measured["streams"]["runs"]
        )
        out.append(f"  {precision} streams: {streams}")
        errors = [run["first_error"] for run in measured["streams"]["runs"] if run.get("first_error")]
        if errors:
            out.append(f"  {precision} errors, the first: {errors[0]}")
        out.append(f"  {precision}: {measured['sustained_sessions']} sessions at 25 fps with p99 < 40 ms")
    return out
