"""`lipstream models convert --fp16`: a model's float16 variant, with float32 inputs and outputs kept.

Half the weights' bytes and, on a GPU with tensor cores, much of the time; the contract is
unchanged (the graph casts at its edges), so the server, the edge and the wire do not know.
The conversion is onnxconverter-common's (the ONNX project's converter helpers), which keeps
the ops that have no float16 kernel in float32.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import onnx
from onnxconverter_common import float16


def to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """A float16 copy of `model` whose inputs and outputs stay float32."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    # The converter names the casts it inserts after their nodes: unnamed nodes would collide.
    for index, node in enumerate(model.graph.node):
        if not node.name:
            node.name = f"{node.op_type.lower()}_{index}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # one line per weight too small for float16, flushed to 1e-7
        converted = float16.convert_float_to_float16(model, keep_io_types=True)
    onnx.checker.check_model(converted)
    return converted


def convert_file(source: Path, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(to_fp16(onnx.load(str(source))), str(target))
    return target


def fp16_name(source: Path) -> Path:
    return source.with_name(f"{source.stem}-fp16{source.suffix}")
