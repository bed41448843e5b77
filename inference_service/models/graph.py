"""A small ONNX graph builder for the generated models, producing the contract's tensors.

The models follow `lipstream.contract`: `input` [B,6,320,320] BGR in [0,1] (reference crop,
then the same crop masked), `audio` [B,32,16,16] (16 per-frame 512-d vectors, frames
i-8..i+7), `output` [B,3,320,320] BGR in [0,1].
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from lipstream import contract

OPSET = 17
IR_VERSION = 8  # the IR that shipped with opset 17: loadable by older runtimes too
LOOKAHEAD_KEY = "lipstream.lookahead_frames"
DESCRIPTION_KEY = "lipstream.description"


class Graph:
    """Accumulates nodes and initializers under unique names, then makes a contract model."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._ids = itertools.count()

    def const(self, value: float | np.ndarray | Sequence[float] | Sequence[int], dtype: type = np.float32) -> str:
        name = f"c{next(self._ids)}"
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, inputs: Sequence[str], output: str | None = None, **attrs: Any) -> str:
        name = output or f"{op_type.lower()}{next(self._ids)}"
        self.nodes.append(helper.make_node(op_type, list(inputs), [name], **attrs))
        return name

    def model(self, name: str, lookahead_frames: int, description: str) -> onnx.ModelProto:
        def tensor(tensor_name: str, channels_hw: Sequence[int]) -> onnx.ValueInfoProto:
            return helper.make_tensor_value_info(tensor_name, TensorProto.FLOAT, ["batch", *channels_hw])

        graph = helper.make_graph(
            self.nodes,
            name,
            inputs=[
                tensor(contract.IMAGE_INPUT, (contract.IMAGE_CHANNELS, contract.MODEL_CROP, contract.MODEL_CROP)),
                tensor(contract.AUDIO_INPUT, contract.AUDIO_WINDOW_SHAPE),
            ],
            outputs=[tensor(contract.OUTPUT, (contract.OUTPUT_CHANNELS, contract.MODEL_CROP, contract.MODEL_CROP))],
            initializer=self.initializers,
        )
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", OPSET)],
            ir_version=IR_VERSION,
            producer_name="lipstream",
            doc_string=description,
        )
        helper.set_model_props(model, {LOOKAHEAD_KEY: str(lookahead_frames), DESCRIPTION_KEY: description})
        onnx.checker.check_model(model)
        return model
