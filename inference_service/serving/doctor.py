"""`lipstream doctor`: can this machine serve on the providers it is configured for, and if not, why.

It answers what an operator needs before the first session: which execution providers the
installed onnxruntime offers, whether each one really starts (and the cause when not: a
missing library, a driver too old, no memory), the GPUs the driver sees, and one timed
inference of the bundled model on each provider that works. It exits 1 when a provider the
config asks for cannot run (with `providers: auto`, any that the build offers), so a deploy
script or a container's start-up check can stop there.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any, TextIO

import onnxruntime as ort

from inference_service.config import InferenceConfig, load_inference_config
from inference_service.models import builtin
from inference_service.runtime import gpu_info, nvidia
from inference_service.runtime.backends import open_session
from inference_service.runtime.probe import ProviderProbe, probe_provider, providers_to_probe
from inference_service.runtime.providers import SessionFactory, requested_providers
from inference_service.runtime.torch_probe import TorchProbe, probe_torch


def model_path(config: InferenceConfig, model_id: str) -> str:
    spec = next((spec for spec in config.models if spec.id == model_id), None)
    if spec is None:
        raise KeyError(f"unknown model '{model_id}'; known: {', '.join(s.id for s in config.models)}")
    if spec.builtin is not None:
        return str(builtin.ensure_builtin(spec.builtin, config.model_dir))
    return str(Path(spec.path or "").expanduser())


def must_run(config: InferenceConfig, available: list[str]) -> list[str]:
    """The providers the config needs: all it names, or with `auto` every one the build offers."""
    requested = requested_providers(config.runtime.providers)
    if config.runtime.providers == "auto":
        return [name for name in requested if name in available]
    return requested


def as_served(config: InferenceConfig, model_id: str) -> dict[str, Any]:
    """The model opened exactly as the server opens it (backend, providers, GPU settings): where it runs and why."""
    spec = next(spec for spec in config.models if spec.id == model_id)
    requested = requested_providers(config.runtime.providers)
    try:
        _, choice = open_session(model_path(config, model_id), spec, config.runtime, requested)
    except Exception as exc:  # noqa: BLE001 - the server would fail this model's load: say so
        return {"runs_on": None, "reason": f"the model does not load: {exc}", "notes": []}
    return {"runs_on": choice.in_use[0], "reason": choice.fallback_reason, "notes": list(choice.notes)}


def diagnose(
    config: InferenceConfig,
    model_id: str,
    *,
    runtime: Any = ort,
    session_factory: SessionFactory | None = None,
    gpus: gpu_info.GpuReport | None = None,
    torch: TorchProbe | None = None,
) -> dict[str, Any]:
    """The whole report as data; `ok` is False when a provider the config needs cannot run."""
    preload = nvidia.preload(runtime, config.runtime.preload_nvidia_libraries)
    available = list(runtime.get_available_providers())
    path = model_path(config, model_id)
    factory = session_factory or runtime.InferenceSession
    probes = [
        probe_provider(name, path, available=available, session_factory=factory, device_id=config.runtime.device_id)
        for name in providers_to_probe(available, requested_providers(config.runtime.providers))
    ]
    needed = must_run(config, available)
    failing = [probe.provider for probe in probes if probe.provider in needed and not probe.started]
    backend = config.runtime.backend
    torch_probe = torch if torch is not None else probe_torch(path, config.runtime.device_id, timed=backend == "torch")
    if backend == "torch" and not torch_probe.devices_started:
        failing.append("torch")
    return {
        "ok": not failing,
        "failing": failing,
        "backend": backend,
        "model": {"id": model_id, "path": path},
        "onnxruntime": {"version": getattr(runtime, "__version__", "?"), "available": available},
        "configured": {"setting": config.runtime.providers, "must_run": needed},
        "nvidia_preload": asdict(preload),
        "providers": [asdict(probe) for probe in probes],
        "gpus": asdict(gpus if gpus is not None else gpu_info.query()),
        "torch": asdict(torch_probe),
        "served": as_served(config, model_id),
    }


def render(report: dict[str, Any], out: TextIO) -> None:
    write = out.write
    ort_info = report["onnxruntime"]
    write(f"onnxruntime {ort_info['version']}: offers {', '.join(ort_info['available'])}\n")
    preload = report["nvidia_preload"]
    write(f"NVIDIA libraries: {preload['status']} ({preload['detail']})\n")
    write(f"model for the timed run: {report['model']['id']} ({report['model']['path']})\n\nproviders:\n")
    for probe in (ProviderProbe(**p) for p in report["providers"]):
        if probe.started:
            write(f"  {probe.provider}: works, batch {probe.batch} in {probe.latency_ms:.1f} ms\n")
        else:
            write(f"  {probe.provider}: does not start: {probe.cause} ({probe.reason})\n")
    gpus = report["gpus"]
    write("\nGPUs:\n")
    for gpu in gpus["gpus"]:
        write(
            f"  {gpu['index']}: {gpu['name']}, {gpu['memory_total_mb']} MiB ({gpu['memory_free_mb']} free), "
            f"driver {gpu['driver']} (from {gpus['source']})\n"
        )
    if not gpus["gpus"]:
        write(f"  none: {gpus['note'] or 'the driver lists no GPU'}\n")
    torch = report["torch"]
    write(f"\ntorch: {torch['summary']}\n")
    for device in torch["devices"]:
        timing = f", batch 1 in {device['latency_ms']:.1f} ms" if device["latency_ms"] is not None else ""
        state = "works" + timing if device["started"] else f"does not start: {device['reason']}"
        write(f"  {device['device']}: {state}\n")
    served = report["served"]
    write(f"\nas the server opens {report['model']['id']}: runs on {served['runs_on'] or 'nothing'}")
    write(f" ({served['reason']})\n" if served["reason"] else "\n")
    for note in served["notes"]:
        write(f"  note: {note}\n")
    configured = report["configured"]
    write(f"\nbackend: {report['backend']}; providers: {configured['setting']} -> needs {configured['must_run']}\n")
    if report["ok"]:
        write("OK: the configured providers run.\n")
    else:
        write(f"FAIL: configured but cannot run: {', '.join(report['failing'])}\n")


def _run(args: argparse.Namespace) -> int:
    config = load_inference_config(args.config)
    try:
        report = diagnose(config, args.model)
    except KeyError as exc:
        print(exc.args[0], file=sys.stderr)
        return 2
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    render(report, sys.stdout)
    return 0 if report["ok"] else 1


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "doctor", help="which execution providers start here, why not, the GPUs, one timed inference on each"
    )
    parser.add_argument("--config", type=Path, help="inference YAML config (default: built-in defaults)")
    parser.add_argument("--model", default="parametric-mouth", metavar="ID", help="model for the timed inference")
    parser.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    parser.set_defaults(handler=_run)
