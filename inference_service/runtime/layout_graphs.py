"""The compact layout's conversions as ONNX graphs: for Triton beside the lip-sync model, and for on-device layout.

`pre`: an I420 crop (uint8 [B, S*3/2, S]) and a float16 audio window (flat [B, N]) -> the model's
float32 inputs (reference and masked copy in its channel order, /255; the window in its shape).
`post`: the model's float32 output -> an I420 mouth (uint8 [B, S*3/2, S]).

They compute exactly what `runtime.layout.CompactLayout` does with OpenCV: BT.601 video-range
YUV <-> RGB in OpenCV's 20-bit fixed point (chroma shared by each 2x2 block on the way in, taken
from its top-left pixel on the way out), in int32, with an offset so integer division floors.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import TensorProto, helper

from inference_service.config import ModelSpec
from inference_service.models.graph import IR_VERSION, OPSET, Graph
from protos import kserve

# The pre and post models' own tensor names, between the compact wire's and the lip-sync model's.
PRE_IMAGE = "model_image"
PRE_AUDIO = "model_audio"
POST_INPUT = "model_output"

SHIFT = 20  # OpenCV's ITUR_BT_601_SHIFT
HALF = 1 << (SHIFT - 1)
FLOOR_OFFSET = 512  # keeps every sum non-negative, so integer division truncates as a shift would
# YUV -> RGB (OpenCV's ITUR_BT_601_C*), and RGB -> YUV (ITUR_BT_601_C*Y, *U, *V).
CY, CUB, CUG, CVG, CVR = 1220542, 2116026, -409993, -852492, 1673527
TO_Y = (269484, 528482, 102760)  # R, G, B
TO_U = (-155188, -305135, 460324)
TO_V = (460324, -385875, -74448)


def _int(graph: Graph, value: int | list[int]) -> str:
    return graph.const(value, np.int32)


def _plane(graph: Graph, flat: str, start: int, end: int, shape: list[int]) -> str:
    """Elements [start, end) of each row of `flat`, as int32 of `shape` (0 keeps the batch axis)."""
    part = graph.op(
        "Slice", [flat, graph.const([start], np.int64), graph.const([end], np.int64), graph.const([1], np.int64)]
    )
    return graph.op("Cast", [graph.op("Reshape", [part, graph.const(shape, np.int64)])], to=TensorProto.INT32)


def _fixed_point(graph: Graph, terms: list[tuple[str, int]], bias: int) -> str:
    """floor((sum of coefficient * term + bias) / 2**SHIFT) in int32."""
    total = graph.op("Mul", [terms[0][0], _int(graph, terms[0][1])])
    for term, coefficient in terms[1:]:
        total = graph.op("Add", [total, graph.op("Mul", [term, _int(graph, coefficient)])])
    shifted = graph.op(
        "Div", [graph.op("Add", [total, _int(graph, bias + (FLOOR_OFFSET << SHIFT))]), _int(graph, 1 << SHIFT)]
    )
    return graph.op("Sub", [shifted, _int(graph, FLOOR_OFFSET)])


def _model(
    graph: Graph, name: str, inputs: list[onnx.ValueInfoProto], outputs: list[onnx.ValueInfoProto]
) -> onnx.ModelProto:
    model = helper.make_model(
        helper.make_graph(graph.nodes, name, inputs, outputs, graph.initializers),
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name="lipstream",
    )
    onnx.checker.check_model(model)
    return model


def _wire_tensors(spec: ModelSpec) -> tuple[onnx.ValueInfoProto, onnx.ValueInfoProto, onnx.ValueInfoProto]:
    size = spec.crop_size
    crop = helper.make_tensor_value_info(kserve.CROP, TensorProto.UINT8, ["batch", *kserve.i420_shape(size)])
    audio = helper.make_tensor_value_info(kserve.AUDIO, TensorProto.FLOAT16, ["batch", math.prod(spec.audio_shape)])
    mouth = helper.make_tensor_value_info(kserve.MOUTH, TensorProto.UINT8, ["batch", *kserve.i420_shape(size)])
    return crop, audio, mouth


def pre(spec: ModelSpec) -> onnx.ModelProto:
    """I420 crop + float16 window -> the model's image input (reference and masked copy) and audio input."""
    graph = Graph()
    size, quarter = spec.crop_size, spec.crop_size * spec.crop_size // 4
    half_size = size // 2
    flat = graph.op("Reshape", [kserve.CROP, graph.const([0, -1], np.int64)])
    luma = _plane(graph, flat, 0, 4 * quarter, [0, 1, size, size])
    chroma = []
    for start in (4 * quarter, 5 * quarter):  # U, then V: each value covers a 2x2 block
        plane = _plane(graph, flat, start, start + quarter, [0, 1, half_size, 1, half_size, 1])
        block = graph.op("Expand", [plane, graph.const([1, 1, 1, 2, 1, 2], np.int64)])
        centred = graph.op(
            "Sub", [graph.op("Reshape", [block, graph.const([0, 1, size, size], np.int64)]), _int(graph, 128)]
        )
        chroma.append(centred)
    u, v = chroma
    y = graph.op("Max", [graph.op("Sub", [luma, _int(graph, 16)]), _int(graph, 0)])
    red = _fixed_point(graph, [(y, CY), (v, CVR)], HALF)
    green = _fixed_point(graph, [(y, CY), (v, CVG), (u, CUG)], HALF)
    blue = _fixed_point(graph, [(y, CY), (u, CUB)], HALF)
    channels = [red, green, blue] if spec.channel_order == "RGB" else [blue, green, red]
    clamped = [graph.op("Min", [graph.op("Max", [c, _int(graph, 0)]), _int(graph, 255)]) for c in channels]
    pixels = graph.op("Cast", [graph.op("Concat", clamped, axis=1)], to=TensorProto.FLOAT)
    reference = graph.op("Mul", [pixels, graph.const(1.0 / 255.0)])
    x0, y0, x1, y1 = spec.mask
    keep = np.ones((size, size), np.float32)
    keep[y0 : y1 + 1, x0 : x1 + 1] = 0.0
    masked = graph.op("Mul", [pixels, graph.const(keep / 255.0)])
    halves = [masked, reference] if spec.masked_first else [reference, masked]
    graph.op("Concat", halves, PRE_IMAGE, axis=1)
    window = graph.op("Reshape", [kserve.AUDIO, graph.const([0, *spec.audio_shape], np.int64)])
    graph.op("Cast", [window], PRE_AUDIO, to=TensorProto.FLOAT)
    crop, audio, _ = _wire_tensors(spec)
    outputs = [
        helper.make_tensor_value_info(PRE_IMAGE, TensorProto.FLOAT, ["batch", 6, size, size]),
        helper.make_tensor_value_info(PRE_AUDIO, TensorProto.FLOAT, ["batch", *spec.audio_shape]),
    ]
    return _model(graph, "lipstream-pre", [crop, audio], outputs)


def post(spec: ModelSpec) -> onnx.ModelProto:
    """The model's float output in [0, 1] -> an I420 mouth (8-bit rounding, chroma from each block's top-left)."""
    graph = Graph()
    size = spec.crop_size
    scaled = graph.op("Mul", [graph.op("Relu", [POST_INPUT]), graph.const(255.0)])
    clipped = graph.op("Clip", [graph.op("Round", [scaled]), graph.const(0.0), graph.const(255.0)])
    pixels = graph.op("Cast", [clipped], to=TensorProto.INT32)
    planes = {}
    for index, name in enumerate(spec.channel_order):
        planes[name] = graph.op(
            "Slice",
            [pixels, graph.const([index], np.int64), graph.const([index + 1], np.int64), graph.const([1], np.int64)],
        )
    rgb = [planes[name] for name in "RGB"]
    corner = [
        graph.op(
            "Slice",
            [
                p,
                graph.const([0, 0], np.int64),
                graph.const([size, size], np.int64),
                graph.const([2, 3], np.int64),
                graph.const([2, 2], np.int64),
            ],
        )
        for p in rgb
    ]
    luma = _fixed_point(graph, list(zip(rgb, TO_Y)), HALF + (16 << SHIFT))
    u = _fixed_point(graph, list(zip(corner, TO_U)), HALF + (128 << SHIFT))
    v = _fixed_point(graph, list(zip(corner, TO_V)), HALF + (128 << SHIFT))
    rows = [graph.op("Reshape", [plane, graph.const([0, -1], np.int64)]) for plane in (luma, u, v)]
    i420 = graph.op("Reshape", [graph.op("Concat", rows, axis=1), graph.const([0, *kserve.i420_shape(size)], np.int64)])
    graph.op("Cast", [i420], kserve.MOUTH, to=TensorProto.UINT8)
    output = helper.make_tensor_value_info(POST_INPUT, TensorProto.FLOAT, ["batch", 3, size, size])
    _, _, mouth = _wire_tensors(spec)
    return _model(graph, "lipstream-post", [output], [mouth])
