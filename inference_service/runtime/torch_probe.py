"""What `lipstream doctor` says of PyTorch: installed or not, the CUDA it was built for, whether the
model runs on each device it can use, and how long one inference takes there.

torch is imported only if it is installed (a find_spec check), so the doctor of an
onnxruntime-only install stays fast and never fails for want of it.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field

import numpy as np

from inference_service.runtime.probe import classify, time_runs


@dataclass
class TorchDevice:
    device: str
    started: bool
    reason: str = ""
    latency_ms: float | None = None


@dataclass
class TorchProbe:
    installed: bool
    summary: str
    devices: list[TorchDevice] = field(default_factory=list)

    @property
    def devices_started(self) -> bool:
        return any(device.started for device in self.devices)


def probe_torch(model_path: str, device_id: int = 0, timed: bool = True) -> TorchProbe:
    """torch's state; with `timed`, the model converted and run once on the CPU and on the GPU when visible."""
    if importlib.util.find_spec("torch") is None:
        return TorchProbe(False, "not installed (pip install '.[torch]' for runtime.backend: torch)")
    import torch

    cuda = torch.version.cuda
    visible = torch.cuda.is_available()
    summary = f"{torch.__version__}, " + (f"built for CUDA {cuda}" if cuda else "a CPU build")
    summary += f", {torch.cuda.device_count()} GPU(s) visible" if visible else ", no GPU visible"
    if not timed:
        return TorchProbe(True, summary + " (not the configured backend: not timed)")
    devices = ["cpu"] + ([f"cuda:{device_id}"] if visible else [])
    return TorchProbe(True, summary, [_time_on(model_path, device) for device in devices])


def _time_on(model_path: str, device: str) -> TorchDevice:
    import torch

    from inference_service.runtime.torch_session import TorchSession, load_graph

    try:
        import onnx

        module, inputs, outputs = load_graph(onnx.load(model_path))
        dtype = torch.float16 if device.startswith("cuda") else torch.float32
        session = TorchSession(module, inputs, outputs, device, dtype)
        rng = np.random.default_rng(0)
        feeds = {
            arg.name: rng.random([d if isinstance(d, int) else 1 for d in arg.shape], dtype=np.float32)
            for arg in inputs
        }
        latency = time_runs(lambda: session.run(None, feeds))
    except Exception as exc:  # noqa: BLE001 - an unsupported op, no memory: a verdict, not a crash
        return TorchDevice(device, False, f"{classify(str(exc))}: {exc}"[:600])
    return TorchDevice(device, True, latency_ms=latency)
