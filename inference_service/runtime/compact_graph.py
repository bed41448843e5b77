"""One ONNX graph from the compact wire to the compact wire: layout in, the model, layout out.

With it the whole frame path after the wire runs where the model runs: an 8-bit I420 crop and a
float16 window go to the device (1.5 + 0.03 bytes a pixel, instead of the 24 of the model's six
float32 channels) and an 8-bit I420 mouth comes back, with no numpy or OpenCV pass on the host.
The layout steps are `layout_graphs.pre` and `post`, which compute exactly what `CompactLayout`
computes with OpenCV, so on the CPU the answers are the same bytes.
"""

from __future__ import annotations

import onnx
from onnx import compose

from inference_service.config import ModelSpec
from inference_service.runtime import layout_graphs
from protos import kserve

INPUTS = (kserve.CROP, kserve.AUDIO)
OUTPUT = kserve.MOUTH


class CompactGraphError(ValueError):
    """The model cannot be joined to the layout graphs (another opset or IR version, odd tensors)."""


def compact_model(spec: ModelSpec, model_path: str) -> onnx.ModelProto:
    """crop uint8 [B, S*3/2, S] + audio float16 [B, N] -> mouth uint8 [B, S*3/2, S], through the model."""
    model = onnx.load(model_path)
    pre = compose.add_prefix(layout_graphs.pre(spec), "pre/", rename_inputs=False, rename_outputs=False)
    post = compose.add_prefix(layout_graphs.post(spec), "post/", rename_inputs=False, rename_outputs=False)
    model = compose.add_prefix(model, "model/", rename_inputs=False, rename_outputs=False)
    for part in (pre, post):
        part.ir_version = model.ir_version
    try:
        front = compose.merge_models(
            pre,
            model,
            io_map=[(layout_graphs.PRE_IMAGE, spec.image_input), (layout_graphs.PRE_AUDIO, spec.audio_input)],
        )
        whole = compose.merge_models(front, post, io_map=[(spec.output, layout_graphs.POST_INPUT)])
    except (ValueError, onnx.checker.ValidationError) as exc:
        raise CompactGraphError(f"model '{spec.id}': cannot join the layout graphs: {exc}") from exc
    kept = [value for value in whole.graph.output if value.name == OUTPUT]
    del whole.graph.output[:]
    whole.graph.output.extend(kept)
    return whole
