"""onnxruntime runs through I/O bindings: buffers that stay put, per batch size and worker thread.

`session.run` allocates the outputs and, on a GPU, copies every input and output through fresh
pageable memory at each call. Bound runs reuse device buffers for inputs and outputs (one set
per batch shape and worker thread), stage inputs in reused host buffers (pinned when torch with
CUDA is there) and can replay a CUDA graph captured per batch size (`gpu_graph_id`): the CUDA
provider needs fixed addresses for that, which is what the bindings give it. The results are
the same as `session.run`'s (a test checks it on the CPU, where the same code runs).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np
import onnxruntime as ort

from inference_service.runtime.host_memory import HostBuffers


@dataclass
class _Bound:
    binding: Any
    inputs: dict[str, Any]  # OrtValues on the device
    outputs: dict[str, Any] | None  # OrtValues on the device, once their shapes are known
    options: Any


class BoundSession:
    """An onnxruntime session with `run(names, feeds)` through reused I/O bindings."""

    def __init__(self, session: Any, device: str, device_id: int = 0, cuda_graphs: bool = False) -> None:
        self.session = session
        self.device = device  # "cuda" or "cpu", as OrtValue spells it
        self.device_id = device_id
        self.cuda_graphs = cuda_graphs
        self._local = threading.local()
        self._shared = SimpleNamespace()
        self._graph_lock = threading.Lock()  # a captured graph replays one batch at a time
        self._graph_ids: dict[tuple[tuple[int, ...], ...], int] = {}

    def get_inputs(self) -> Any:
        return self.session.get_inputs()

    def get_outputs(self) -> Any:
        return self.session.get_outputs()

    def get_providers(self) -> list[str]:
        return list(self.session.get_providers())

    def _state(self) -> tuple[dict[Any, _Bound], HostBuffers]:
        """This thread's buffers; with CUDA graphs, the one set every thread shares (a graph keeps its addresses)."""
        local = self._shared if self.cuda_graphs else self._local
        if not hasattr(local, "bound"):
            local.bound = {}
            local.host = HostBuffers(want_pinned=self.device == "cuda")
        return local.bound, local.host

    def run(self, names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        if self.cuda_graphs:
            with self._graph_lock:
                return self._run(names, feeds)
        return self._run(names, feeds)

    def _run(self, names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        bound_sets, host = self._state()
        key = tuple(sorted((name, array.shape) for name, array in feeds.items()))
        bound = bound_sets.get(key)
        if bound is None:
            bound = bound_sets[key] = self._bind(feeds, key)
        for name, array in feeds.items():
            source = np.ascontiguousarray(array)
            # To a GPU through the reused (pinned) host buffer; on the CPU straight into the bound input.
            bound.inputs[name].update_inplace(host.stage(name, source) if self.device == "cuda" else source)
        return self._run_bound(bound, names)

    def _bind(self, feeds: dict[str, np.ndarray], key: tuple[Any, ...]) -> _Bound:
        binding = self.session.io_binding()
        inputs = {}
        for name, array in feeds.items():
            value = ort.OrtValue.ortvalue_from_shape_and_type(array.shape, array.dtype, self.device, self.device_id)
            binding.bind_ortvalue_input(name, value)
            inputs[name] = value
        options = ort.RunOptions()
        if self.cuda_graphs:
            graph_id = self._graph_ids.setdefault(key, len(self._graph_ids) + 1)
            options.add_run_config_entry("gpu_graph_id", str(graph_id))
        return _Bound(binding, inputs, None, options)

    def _run_bound(self, bound: _Bound, names: list[str]) -> list[np.ndarray]:
        if bound.outputs is None:
            # First run of this shape: let the runtime allocate the outputs on the device, then keep them bound.
            for name in names:
                bound.binding.bind_output(name, self.device, self.device_id)
            self.session.run_with_iobinding(bound.binding, bound.options)
            values = bound.binding.get_outputs()
            bound.outputs = dict(zip(names, values))
            bound.binding.clear_binding_outputs()
            for name, value in bound.outputs.items():
                bound.binding.bind_ortvalue_output(name, value)
        else:
            self.session.run_with_iobinding(bound.binding, bound.options)
        # Copies: the bound outputs are overwritten by the next run of this shape.
        return [np.array(bound.outputs[name].numpy(), copy=True) for name in names]
