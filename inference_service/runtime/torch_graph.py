"""An ONNX graph as a torch module, for the torch backend.

lipstream's models are ONNX files with one tensor contract; the torch backend runs the same
files in PyTorch (fp16 and CUDA graphs on a GPU, no onnxruntime-gpu needed). onnx2torch does
this in general, but its converters import torchvision at import time, and PyPI's torchvision
does not load beside the CPU build of torch that CI installs; the ops of lip-sync UNets are few,
so they are converted here. An op outside the list fails at load with its name, never at run
time. Constant inputs that steer an op (shapes, slice bounds, scales, clip bounds) are read once,
at conversion; float weights become buffers, so `.to(device)` and `.half()` move them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import helper, numpy_helper


class UnsupportedGraph(ValueError):
    """The graph uses an op (or an attribute of one) this converter does not know."""


@dataclass
class Step:
    op: str
    fn: Callable[..., Any]
    inputs: list[str]
    outputs: list[str]


UNARY: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "Relu": torch.relu,
    "Sigmoid": torch.sigmoid,
    "Tanh": torch.tanh,
    "Abs": torch.abs,
    "Neg": torch.neg,
    "Exp": torch.exp,
    "Sqrt": torch.sqrt,
    "Identity": lambda x: x,
    "Round": torch.round,  # half to even, as ONNX rounds
}
BINARY: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "Add": torch.add,
    "Sub": torch.sub,
    "Mul": torch.mul,
    # ONNX divides integers truncating toward zero, floats exactly.
    "Div": lambda a, b: torch.div(a, b, rounding_mode=None if a.is_floating_point() else "trunc"),
}
VARIADIC: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {"Max": torch.maximum, "Min": torch.minimum}
INTEGER_TYPES = {
    onnx.TensorProto.UINT8: torch.uint8,
    onnx.TensorProto.INT32: torch.int32,
    onnx.TensorProto.INT64: torch.int64,
}
FLOAT_TYPES = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE)


class OnnxModule(torch.nn.Module):
    """forward(*inputs) -> tuple of outputs, in the graph's order."""

    def __init__(self, model: onnx.ModelProto) -> None:
        super().__init__()
        graph = model.graph
        self.float_dtype = torch.float32  # what a Cast to a float type gives: fp16 when the module runs in fp16
        self.constants: dict[str, np.ndarray] = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
        self.input_names = [arg.name for arg in graph.input if arg.name not in self.constants]
        self.output_names = [arg.name for arg in graph.output]
        self.steps: list[Step] = []
        for node in graph.node:
            if node.op_type == "Constant":
                self.constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
                continue
            self.steps.append(Step(node.op_type, self._convert(node), list(node.input), list(node.output)))
        self._buffer_of: dict[str, str] = {}
        used = {name for step in self.steps for name in step.inputs}
        for index, (name, value) in enumerate(self.constants.items()):
            if name in used:
                self._buffer_of[name] = f"c{index}"
                self.register_buffer(f"c{index}", torch.from_numpy(np.array(value)), persistent=False)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        env: dict[str, Any] = {name: getattr(self, buffer) for name, buffer in self._buffer_of.items()}
        env.update(zip(self.input_names, inputs))
        env[""] = None  # an omitted optional input
        for step in self.steps:
            result = step.fn(*(env[name] for name in step.inputs))
            if len(step.outputs) == 1:
                env[step.outputs[0]] = result
            else:
                env.update(zip(step.outputs, result))
        return tuple(env[name] for name in self.output_names)

    def _const(self, node: onnx.NodeProto, index: int) -> np.ndarray | None:
        """A constant input of `node`, None when omitted; UnsupportedGraph when it is computed."""
        if index >= len(node.input) or not node.input[index]:
            return None
        name = node.input[index]
        if name not in self.constants:
            raise UnsupportedGraph(f"{node.op_type} '{node.name}': input '{name}' must be a constant")
        return self.constants[name]

    def _convert(self, node: onnx.NodeProto) -> Callable[..., Any]:
        op = node.op_type
        attrs = {attr.name: helper.get_attribute_value(attr) for attr in node.attribute}
        if op in UNARY:
            return UNARY[op]
        if op in BINARY:
            return BINARY[op]
        if op in VARIADIC:
            pairwise = VARIADIC[op]

            def reduce(*xs: torch.Tensor) -> torch.Tensor:
                result = xs[0]
                for x in xs[1:]:
                    result = pairwise(result, x)
                return result

            return reduce
        builder = getattr(self, f"_op_{op}", None)
        if builder is None:
            raise UnsupportedGraph(f"op {op} (node '{node.name}') is not supported by the torch backend")
        return builder(node, attrs)

    def _op_Conv(self, node: onnx.NodeProto, attrs: dict[str, Any]) -> Callable[..., Any]:
        pads = list(attrs.get("pads", [0, 0, 0, 0]))
        if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            raise UnsupportedGraph(f"Conv '{node.name}': auto_pad")
        half = len(pads) // 2
        symmetric = pads[:half] == pads[half:]
        stride, dilation, groups = attrs.get("strides", 1), attrs.get("dilations", 1), attrs.get("group", 1)

        def conv(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
            if not symmetric:  # F.pad wants the last axis first: (left, right, top, bottom)
                x = F.pad(x, [p for axis in reversed(range(half)) for p in (pads[axis], pads[axis + half])])
            return F.conv2d(x, w, b, stride, pads[:half] if symmetric else 0, dilation, groups)

        return conv

    def _op_ConvTranspose(self, node: onnx.NodeProto, attrs: dict[str, Any]) -> Callable[..., Any]:
        pads = list(attrs.get("pads", [0, 0, 0, 0]))
        half = len(pads) // 2
        if pads[:half] != pads[half:] or "output_shape" in attrs:
            raise UnsupportedGraph(f"ConvTranspose '{node.name}': asymmetric pads or output_shape")
        stride, groups = attrs.get("strides", 1), attrs.get("group", 1)
        extra, dilation = attrs.get("output_padding", 0), attrs.get("dilations", 1)

        def deconv(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
            return F.conv_transpose2d(x, w, b, stride, pads[:half], extra, groups, dilation)

        return deconv

    def _op_Clip(self, node: onnx.NodeProto, attrs: dict[str, Any]) -> Callable[..., Any]:
        low, high = self._const(node, 1), self._const(node, 2)
        lo = float(low) if low is not None else attrs.get("min")
        hi = float(high) if high is not None else attrs.get("max")
        return lambda x, *_: torch.clamp(x, lo, hi)

    def _op_LeakyRelu(self, node: onnx.NodeProto, attrs: dict[str, Any]) -> Callable[..., Any]:
        slope = attrs.get("alpha", 0.01)
        return lambda x: F.leaky_relu(x, slope)

    def _op_Concat(self, node: onnx.NodeProto, attrs: dict[str, Any]) -> Callable[..., Any]:
        axis = attrs["axis"]
        return lambda *xs: torch.cat(xs, axis)

    def _op_Reshape(self, node: onnx.NodeProto, attrs: dict[str, Any]) -> Callable[..., Any]:
        shape = [int(v) for v in np.asarray(self._const(node, 1))]

        def reshape(x: torch.Tensor, _: Any) -> torch.Tensor:
            return x.reshape([x.shape[i] if dim == 0 else dim for i, dim in enumerate(shape)])

        return reshape

    def _op_Cast(self, node: onnx.NodeProto, attrs: dict[str, Any]) -> Callable[..., Any]:
        to = attrs["to"]
        if to in FLOAT_TYPES:
            return lambda x: x.to(self.float_dtype)
        if to not in INTEGER_TYPES:
            raise UnsupportedGraph(f"Cast '{node.name}': to type {to}")
        dtype = INTEGER_TYPES[to]
        return lambda x: x.to(dtype)

    def _op_Expand(self, node: onnx.NodeProto, attrs: dict[str, Any]) -> Callable[..., Any]:
        shape = [int(v) for v in np.asarray(self._const(node, 1))]
        return lambda x, _: x.expand(torch.broadcast_shapes(x.shape, shape))

    def _op_Transpose(self, node: onnx.NodeProto, attrs: dict[str, Any]) -> Callable[..., Any]:
        perm = list(attrs["perm"])
        return lambda x: x.permute(perm)

    def _op_Slice(self, node: onnx.NodeProto, attrs: dict[str, Any]) -> Callable[..., Any]:
        starts, ends = np.asarray(self._const(node, 1)), np.asarray(self._const(node, 2))
        axes_c, steps_c = self._const(node, 3), self._const(node, 4)
        axes = list(range(len(starts))) if axes_c is None else [int(a) for a in axes_c]
        steps = [1] * len(starts) if steps_c is None else [int(s) for s in steps_c]
        if any(step <= 0 for step in steps):
            raise UnsupportedGraph(f"Slice '{node.name}': negative steps")
        bounds = [(axis, int(lo), int(hi), step) for axis, lo, hi, step in zip(axes, starts, ends, steps)]

        def slice_(x: torch.Tensor, *_: Any) -> torch.Tensor:
            index = [slice(None)] * x.dim()
            for axis, lo, hi, step in bounds:
                index[axis] = slice(lo, hi, step)  # a stop past the end (INT64_MAX) is the end
            return x[tuple(index)]

        return slice_

    def _op_Unsqueeze(self, node: onnx.NodeProto, attrs: dict[str, Any]) -> Callable[..., Any]:
        axes_c = self._const(node, 1)
        axes = sorted(int(a) for a in (axes_c if axes_c is not None else attrs["axes"]))

        def unsqueeze(x: torch.Tensor, *_: Any) -> torch.Tensor:
            for axis in axes:
                x = x.unsqueeze(axis if axis >= 0 else axis + x.dim() + 1)
            return x

        return unsqueeze

    def _op_ReduceMean(self, node: onnx.NodeProto, attrs: dict[str, Any]) -> Callable[..., Any]:
        axes_c = self._const(node, 1)
        axes = [int(a) for a in axes_c] if axes_c is not None else list(attrs.get("axes", []))
        keep = bool(attrs.get("keepdims", 1))
        return lambda x, *_: torch.mean(x, dim=axes or None, keepdim=keep)

    def _op_Resize(self, node: onnx.NodeProto, attrs: dict[str, Any]) -> Callable[..., Any]:
        scales, sizes = self._const(node, 2), self._const(node, 3)
        mode = _text(attrs.get("mode", "nearest"))
        transform = _text(attrs.get("coordinate_transformation_mode", "half_pixel"))
        if mode == "linear" and transform in ("align_corners", "half_pixel", "pytorch_half_pixel"):
            kwargs: dict[str, Any] = {"mode": "bilinear", "align_corners": transform == "align_corners"}
        elif mode == "nearest" and transform == "asymmetric" and _text(attrs.get("nearest_mode", "")) == "floor":
            kwargs = {"mode": "nearest"}
        else:
            raise UnsupportedGraph(f"Resize '{node.name}': mode {mode} with {transform}")
        if sizes is not None and sizes.size:
            kwargs["size"] = [int(v) for v in sizes[2:]]
        else:
            kwargs["scale_factor"] = [float(v) for v in np.asarray(scales)[2:]]
        return lambda x, *_: F.interpolate(x, **kwargs)

    def _op_GridSample(self, node: onnx.NodeProto, attrs: dict[str, Any]) -> Callable[..., Any]:
        mode = {"linear": "bilinear", "cubic": "bicubic"}.get(_text(attrs.get("mode", "bilinear")))
        mode = mode or _text(attrs.get("mode", "bilinear"))
        padding = _text(attrs.get("padding_mode", "zeros"))
        corners = bool(attrs.get("align_corners", 0))

        def sample(x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
            # In float32 even in an fp16 module: a coordinate's rounding error times the image's gradient.
            return F.grid_sample(x.float(), grid.float(), mode, padding, corners).to(x.dtype)

        return sample


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def load_onnx(path: str) -> OnnxModule:
    return OnnxModule(onnx.load(path)).eval()
