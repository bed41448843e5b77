"""`lipstream models export-triton`: a Triton model repository that keeps the compact wire.

For model ID it writes four models (Triton's layout: DIR/NAME/config.pbtxt, DIR/NAME/1/model.onnx):
- `ID`: the lip-sync ONNX model as it is, with dynamic batching;
- `ID-compact-pre` and `ID-compact-post`: the layout conversions as ONNX graphs (`graphs`);
- `ID-compact`: an ensemble of the three with the compact wire's tensors, the name an edge with
  `inference.protocol: kserve` sends to (`protos.kserve`).
Both public models carry lipstream's look-ahead parameter, which such an edge reads.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import onnx
from google.protobuf import text_format

from inference_service.config import BatchingConfig, ModelSpec
from inference_service.models.builtin import ensure_builtin
from inference_service.runtime import layout_graphs as graphs
from protos import kserve
from protos.kserve import model_config_pb2

ONNX_PLATFORM = "onnxruntime_onnx"
ENSEMBLE_PLATFORM = "ensemble"
VERSION = "1"
_DATATYPE_OF: dict[int, str] = {
    onnx.TensorProto.FLOAT: "FP32",
    onnx.TensorProto.FLOAT16: "FP16",
    onnx.TensorProto.UINT8: "UINT8",
    onnx.TensorProto.INT64: "INT64",
}


class ExportError(ValueError):
    """The model cannot be served this way; the message says why."""


def graph_tensors(model: onnx.ModelProto) -> tuple[list[kserve.TensorSpec], list[kserve.TensorSpec]]:
    """An ONNX model's inputs and outputs as KServe describes them (-1 for a named or unknown axis)."""

    def spec(value: onnx.ValueInfoProto) -> kserve.TensorSpec:
        tensor = value.type.tensor_type
        datatype = _DATATYPE_OF.get(tensor.elem_type)
        if datatype is None:
            raise ExportError(f"{value.name}: ONNX element type {tensor.elem_type} is not served")
        shape = tuple(dim.dim_value if dim.HasField("dim_value") else -1 for dim in tensor.shape.dim)
        return kserve.TensorSpec(value.name, datatype, shape)

    initializers = {init.name for init in model.graph.initializer}
    inputs = [spec(value) for value in model.graph.input if value.name not in initializers]
    return inputs, [spec(value) for value in model.graph.output]


def _write(directory: Path, config: model_config_pb2.ModelConfig, model: onnx.ModelProto | Path | None) -> None:
    version = directory / config.name / VERSION
    version.mkdir(parents=True, exist_ok=True)
    (directory / config.name / "config.pbtxt").write_text(text_format.MessageToString(config))
    if isinstance(model, Path):
        shutil.copyfile(model, version / "model.onnx")
    elif model is not None:
        onnx.save(model, str(version / "model.onnx"))


def _onnx_config(
    name: str, model: onnx.ModelProto, batching: BatchingConfig, lookahead: int | None = None
) -> model_config_pb2.ModelConfig:
    inputs, outputs = graph_tensors(model)
    config = kserve.model_config(name, ONNX_PLATFORM, batching.max_batch, inputs, outputs, lookahead)
    config.dynamic_batching.max_queue_delay_microseconds = batching.max_queue_delay_us
    return config


def _step(model: str, input_map: dict[str, str], output_map: dict[str, str]) -> model_config_pb2.ModelEnsembling.Step:
    step = model_config_pb2.ModelEnsembling.Step(model_name=model, model_version=-1)
    step.input_map.update(input_map)  # the step model's tensor -> the ensemble's
    step.output_map.update(output_map)
    return step


def export(spec: ModelSpec, model_path: Path, out: Path, batching: BatchingConfig) -> list[Path]:
    """Write the repository for `spec` (its ONNX file at `model_path`) under `out`; returns the config files."""
    model = onnx.load(str(model_path), load_external_data=False)
    names = {tensor.name for tensors in graph_tensors(model) for tensor in tensors}
    missing = sorted({spec.image_input, spec.audio_input, spec.output} - names)
    if missing:
        raise ExportError(f"model '{spec.id}' ({model_path}) has no tensor {', '.join(missing)}; its layout names them")
    compact = kserve.compact_name(spec.id)
    pre, post = graphs.pre(spec), graphs.post(spec)
    configs: list[tuple[model_config_pb2.ModelConfig, onnx.ModelProto | Path | None]] = [
        (_onnx_config(spec.id, model, batching, spec.lookahead_frames), model_path),
        (_onnx_config(f"{compact}-pre", pre, batching), pre),
        (_onnx_config(f"{compact}-post", post, batching), post),
    ]
    wire_inputs, wire_outputs = kserve.compact_tensors(spec.crop_size, spec.audio_shape)
    ensemble = kserve.model_config(
        compact, ENSEMBLE_PLATFORM, batching.max_batch, wire_inputs, wire_outputs, spec.lookahead_frames
    )
    ensemble.ensemble_scheduling.step.extend(
        [
            _step(
                f"{compact}-pre",
                {kserve.CROP: kserve.CROP, kserve.AUDIO: kserve.AUDIO},
                {graphs.PRE_IMAGE: "image", graphs.PRE_AUDIO: "window"},
            ),
            _step(spec.id, {spec.image_input: "image", spec.audio_input: "window"}, {spec.output: "prediction"}),
            _step(f"{compact}-post", {graphs.POST_INPUT: "prediction"}, {kserve.MOUTH: kserve.MOUTH}),
        ]
    )
    configs.append((ensemble, None))
    for config, source in configs:
        _write(out, config, source)
    return [out / config.name / "config.pbtxt" for config, _ in configs]


def model_file(spec: ModelSpec) -> Path:
    """The ONNX file a spec names: its path, or the built-in model generated into the cache."""
    return Path(spec.path) if spec.path is not None else ensure_builtin(str(spec.builtin))
