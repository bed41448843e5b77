"""The torch backend's session: what the registry and the model runs expect of an onnxruntime session.

`get_inputs()`, `get_outputs()`, `get_providers()` and `run(names, feeds)` with numpy in and out,
so the registry, the batchers and both protocols serve a torch model unchanged. The model is an
ONNX file converted by `torch_graph`, a TorchScript file (`.pt`, `.ts`) or a `torch.export` file
(`.pt2`); on CUDA it runs in fp16 by default (float inputs cast on the device, outputs back to
float32), can stage inputs in pinned memory and replay one CUDA graph per batch shape.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from inference_service.config import ModelSpec
from inference_service.runtime.host_memory import HostBuffers
from inference_service.runtime.torch_graph import OnnxModule

ONNX_TYPES = {
    onnx.TensorProto.FLOAT: "tensor(float)",
    onnx.TensorProto.FLOAT16: "tensor(float16)",
    onnx.TensorProto.UINT8: "tensor(uint8)",
    onnx.TensorProto.INT64: "tensor(int64)",
}
CPU_NAME = "TorchCPU"
CUDA_NAME = "TorchCUDA"


@dataclass(frozen=True)
class ArgInfo:
    """Like onnxruntime's NodeArg: name, type string, shape (None or a name for a dynamic axis)."""

    name: str
    type: str
    shape: list[int | None]


def onnx_args(values: Any) -> list[ArgInfo]:
    args = []
    for value in values:
        tensor = value.type.tensor_type
        shape = [dim.dim_value if dim.HasField("dim_value") else None for dim in tensor.shape.dim]
        args.append(ArgInfo(value.name, ONNX_TYPES.get(tensor.elem_type, "tensor(float)"), shape))
    return args


def contract_args(spec: ModelSpec) -> tuple[list[ArgInfo], list[ArgInfo]]:
    """A TorchScript or torch.export file carries no tensor names: the model's config entry gives them."""
    size = spec.crop_size
    inputs = [
        ArgInfo(spec.image_input, "tensor(float)", [None, 6, size, size]),
        ArgInfo(spec.audio_input, "tensor(float)", [None, *spec.audio_shape]),
    ]
    return inputs, [ArgInfo(spec.output, "tensor(float)", [None, 3, size, size])]


def load_module(path: str, spec: ModelSpec) -> tuple[torch.nn.Module, list[ArgInfo], list[ArgInfo]]:
    """A model file by its suffix: TorchScript, torch.export, else ONNX."""
    suffix = Path(path).suffix.lower()
    if suffix in (".pt", ".ts"):
        inputs, outputs = contract_args(spec)
        return torch.jit.load(path, map_location="cpu").eval(), inputs, outputs
    if suffix == ".pt2":
        inputs, outputs = contract_args(spec)
        return torch.export.load(path).module(), inputs, outputs
    return load_graph(onnx.load(path))


def load_graph(model: onnx.ModelProto) -> tuple[torch.nn.Module, list[ArgInfo], list[ArgInfo]]:
    initializers = {init.name for init in model.graph.initializer}
    inputs = onnx_args(arg for arg in model.graph.input if arg.name not in initializers)
    return OnnxModule(model).eval(), inputs, onnx_args(model.graph.output)


class TorchSession:
    """One torch module on one device, run like an onnxruntime session."""

    def __init__(
        self,
        module: torch.nn.Module,
        inputs: list[ArgInfo],
        outputs: list[ArgInfo],
        device: str,
        dtype: torch.dtype,
        *,
        pinned: bool = False,
        cuda_graphs: bool = False,
    ) -> None:
        self.device = torch.device(device)
        self.dtype = dtype
        self.module = module.to(self.device, dtype) if dtype != torch.float32 else module.to(self.device)
        if isinstance(self.module, OnnxModule):
            self.module.float_dtype = dtype
        self._inputs, self._outputs = inputs, outputs
        self._pinned = pinned and self.device.type == "cuda"
        self.cuda_graphs = cuda_graphs and self.device.type == "cuda"
        self._graphs: dict[tuple[Any, ...], tuple[list[torch.Tensor], Any, list[torch.Tensor]]] = {}
        self._lock = threading.Lock()
        self._local = threading.local()

    def get_inputs(self) -> list[ArgInfo]:
        return self._inputs

    def get_outputs(self) -> list[ArgInfo]:
        return self._outputs

    def get_providers(self) -> list[str]:
        return [CUDA_NAME if self.device.type == "cuda" else CPU_NAME]

    def run(self, names: list[str] | None, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        with torch.inference_mode():
            tensors = [self._upload(arg.name, feeds[arg.name]) for arg in self._inputs]
            if self.cuda_graphs:
                with self._lock:
                    results = self._replay(tensors)
                    return self._download(names, results)
            return self._download(names, self._forward(tensors))

    def _upload(self, name: str, array: np.ndarray) -> torch.Tensor:
        array = np.ascontiguousarray(array)
        if self._pinned:
            if not hasattr(self._local, "host"):
                self._local.host = HostBuffers(want_pinned=True)
            array = self._local.host.stage(name, array)
        if not array.flags.writeable:  # torch wants writable memory (the wire's bytes are not): a copy
            array = array.copy()
        tensor = torch.from_numpy(array).to(self.device, non_blocking=self._pinned)
        return tensor.to(self.dtype) if tensor.is_floating_point() else tensor

    def _forward(self, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
        result = self.module(*tensors)
        return list(result) if isinstance(result, tuple | list) else [result]

    def _download(self, names: list[str] | None, results: list[torch.Tensor]) -> list[np.ndarray]:
        by_name = {arg.name: tensor for arg, tensor in zip(self._outputs, results)}
        wanted = names or [arg.name for arg in self._outputs]
        arrays = []
        for name in wanted:
            tensor = by_name[name]
            tensor = tensor.float() if tensor.is_floating_point() else tensor
            arrays.append(tensor.cpu().numpy())
        return arrays

    def _replay(self, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
        """One CUDA graph per input shape: captured at its first batch, replayed after (inputs copied in place)."""
        key = tuple((tuple(t.shape), t.dtype) for t in tensors)
        entry = self._graphs.get(key)
        if entry is None:
            static = [t.clone() for t in tensors]
            stream = torch.cuda.Stream(self.device)
            stream.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(stream):
                for _ in range(3):  # warm-up outside the capture (cuDNN picks its algorithms)
                    self._forward(static)
            torch.cuda.current_stream(self.device).wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                outputs = self._forward(static)
            entry = self._graphs[key] = (static, graph, outputs)
        static, graph, outputs = entry
        for target, source in zip(static, tensors):
            target.copy_(source)
        graph.replay()
        return outputs
