"""Execution-provider choice with a logged fall-back to CPU.

A GPU runtime that fails to initialise (missing CUDA libraries, no device, a
TensorRT build error) must never take the service down: the session is built
again on CPU and the reason is kept for GetServerInfo and the metrics.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import onnxruntime as ort

log = logging.getLogger(__name__)

ORT_NAMES = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
CPU = ORT_NAMES["cpu"]

SessionFactory = Callable[..., Any]


def requested_providers(setting: Literal["auto"] | Sequence[str]) -> list[str]:
    """The onnxruntime provider names the config asks for, best first, CPU always last."""
    names = list(ORT_NAMES) if setting == "auto" else list(setting)
    wanted = [ORT_NAMES[name] for name in names]
    if CPU not in wanted:
        wanted.append(CPU)
    return wanted


@dataclass
class ProviderChoice:
    requested: list[str]
    in_use: list[str]
    fallback_reason: str = ""
    notes: list[str] = field(default_factory=list)  # settings that do not apply here, and why


def _provider_options(name: str, device_id: int, cuda_graphs: bool = False) -> dict[str, Any]:
    if name == CPU:
        return {}
    if name == ORT_NAMES["cuda"] and cuda_graphs:
        return {"device_id": device_id, "enable_cuda_graph": "1"}
    return {"device_id": device_id}


def create_session(
    model_path: str | bytes,
    requested: list[str],
    *,
    device_id: int = 0,
    cuda_graphs: bool = False,
    intra_op_threads: int = 0,
    allow_spinning: bool = False,
    available: Sequence[str] | None = None,
    session_factory: SessionFactory = ort.InferenceSession,
) -> tuple[Any, ProviderChoice]:
    """Open an InferenceSession on the best provider that really starts."""
    available = list(ort.get_available_providers() if available is None else available)
    usable = [name for name in requested if name in available]
    missing = [name for name in requested if name not in available]
    reasons = [f"{', '.join(missing)} not available in this onnxruntime build"] if missing else []
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    # Spinning workers hold a core at ~100 % between the frames of a real-time stream,
    # which starves the edge on a shared machine; batches are big enough not to need it.
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if allow_spinning else "0")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if usable and usable != [CPU]:
        try:
            session = session_factory(
                model_path,
                sess_options=options,
                providers=[(name, _provider_options(name, device_id, cuda_graphs)) for name in usable],
            )
            in_use = list(session.get_providers())
            if in_use[0] != usable[0]:
                reasons.append(f"{usable[0]} did not start (onnxruntime fell back to {in_use[0]})")
            return session, _choice(requested, in_use, reasons, model_path)
        except Exception as exc:  # noqa: BLE001 - any GPU start-up failure means "use CPU"
            reasons.append(f"{', '.join(n for n in usable if n != CPU)} failed to start: {exc}")
    session = session_factory(model_path, sess_options=options, providers=[CPU])
    return session, _choice(requested, list(session.get_providers()), reasons, model_path)


def _choice(requested: list[str], in_use: list[str], reasons: list[str], path: str | bytes) -> ProviderChoice:
    reason = "; ".join(reasons)
    gpu_asked = any(name != CPU for name in requested)
    if gpu_asked and in_use[0] == CPU:
        label = path if isinstance(path, str) else "(in memory)"
        log.warning("model %s runs on CPU: %s", label, reason or "no GPU provider requested")
    return ProviderChoice(requested=requested, in_use=in_use, fallback_reason=reason if gpu_asked else "")
