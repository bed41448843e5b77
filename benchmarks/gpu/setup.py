"""What one bench run serves: the backend, the device and the precision, as the inference config spells them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inference_service.config import ModelSpec
from inference_service.models import builtin, fp16


@dataclass(frozen=True)
class Setup:
    backend: str  # onnxruntime | torch
    device: str  # cuda | cpu
    model: str  # a built-in model
    io_binding: bool = False
    cuda_graphs: bool = False
    # The layout in the model's graph, on every device: the path a GPU serves by default (device_layout: auto),
    # and it needs no OpenCV, which the wheelhouse leaves out.
    device_layout: str = "on"

    def providers(self) -> list[str]:
        return ["cuda", "cpu"] if self.device == "cuda" else ["cpu"]

    def runtime(self, precision: str) -> dict[str, Any]:
        """The `runtime` section for this precision (onnxruntime's fp16 is a converted file, not a setting)."""
        return {
            "backend": self.backend,
            "providers": self.providers(),
            "torch_precision": precision if self.backend == "torch" else "auto",
            "io_binding": self.io_binding,
            "cuda_graphs": self.cuda_graphs,
            "device_layout": self.device_layout,
        }

    def model_spec(self, precision: str, work: Path) -> ModelSpec:
        """The model entry: the built-in file, or for onnxruntime in fp16 its converted variant in `work`."""
        lookahead = builtin.lookup(self.model).lookahead_frames
        if precision == "fp16" and self.backend == "onnxruntime":
            target = work / f"{self.model}-fp16.onnx"
            if not target.is_file():
                fp16.convert_file(builtin.ensure_builtin(self.model), target)
            return ModelSpec(id=self.model, path=str(target), lookahead_frames=lookahead)
        return ModelSpec(id=self.model, builtin=self.model, lookahead_frames=lookahead)

    def model_path(self, precision: str, work: Path) -> str:
        spec = self.model_spec(precision, work)
        return spec.path if spec.path is not None else str(builtin.ensure_builtin(self.model))
