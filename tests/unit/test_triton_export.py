"""`lipstream models export-triton`: configs parse as Triton's and fit their graphs, which convert as lipstream does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from google.protobuf import text_format
from inference_helpers import tiny_spec, write_tiny_model
from tritonclient.grpc import model_config_pb2

from inference_service.config import BatchingConfig, ModelSpec
from inference_service.models.builtin import ensure_builtin
from inference_service.runtime import layout_graphs as graphs
from inference_service.runtime.layout import I420, CompactFrame, CompactLayout
from inference_service.triton.repository import ExportError, export, graph_tensors

MODEL = "parametric-mouth"
NAMES = [MODEL, f"{MODEL}-compact-pre", f"{MODEL}-compact-post", f"{MODEL}-compact"]
DATATYPE = {"FP32": "TYPE_FP32", "FP16": "TYPE_FP16", "UINT8": "TYPE_UINT8"}


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("repository")
    spec = ModelSpec(id=MODEL, builtin=MODEL, lookahead_frames=1)
    export(spec, ensure_builtin(MODEL), out, BatchingConfig(max_batch=8, max_queue_delay_us=2000))
    return out


def configs(repository: Path) -> dict[str, model_config_pb2.ModelConfig]:
    return {
        name: text_format.Parse((repository / name / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
        for name in NAMES
    }


def session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_every_config_parses_as_triton_model_config_and_matches_its_graph(repository: Path) -> None:
    assert sorted(p.name for p in repository.iterdir()) == sorted(NAMES)
    parsed = configs(repository)
    for name, config in parsed.items():
        assert config.name == name and config.max_batch_size == 8
        if config.platform == "ensemble":
            assert list((repository / name / "1").iterdir()) == [], "an ensemble's version directory is empty"
            continue
        assert config.platform == "onnxruntime_onnx"
        assert config.dynamic_batching.max_queue_delay_microseconds == 2000
        model = onnx.load(str(repository / name / "1" / "model.onnx"))
        onnx.checker.check_model(model)
        inputs, outputs = graph_tensors(model)
        for declared, actual in ((config.input, inputs), (config.output, outputs)):
            described = [(t.name, model_config_pb2.DataType.Name(t.data_type), list(t.dims)) for t in declared]
            assert described == [(t.name, DATATYPE[t.datatype], list(t.shape[1:])) for t in actual], name
            assert all(t.shape[0] == -1 for t in actual), f"{name}: the batch axis must be dynamic"
    for name in (MODEL, f"{MODEL}-compact"):
        assert parsed[name].parameters["lipstream.lookahead_frames"].string_value == "1"


def test_the_ensemble_wires_existing_tensors_from_the_compact_wire_to_the_mouth(repository: Path) -> None:
    parsed = configs(repository)
    ensemble = parsed[f"{MODEL}-compact"]
    assert ensemble.platform == "ensemble"
    assert [(t.name, list(t.dims)) for t in ensemble.input] == [("crop", [480, 320]), ("audio", [8192])]
    assert [(t.name, list(t.dims)) for t in ensemble.output] == [("mouth", [480, 320])]
    available = {t.name for t in ensemble.input}
    for step in ensemble.ensemble_scheduling.step:
        composing = parsed[step.model_name]
        assert set(step.input_map) == {t.name for t in composing.input}, step.model_name
        assert set(step.input_map.values()) <= available, f"{step.model_name} reads a tensor nothing produced"
        assert set(step.output_map) <= {t.name for t in composing.output}, step.model_name
        available |= set(step.output_map.values())
    assert {t.name for t in ensemble.output} <= available


@pytest.mark.parametrize(
    "spec",
    [
        ModelSpec(id="contract", builtin=MODEL),
        ModelSpec(
            id="other",
            builtin="x",
            crop_size=64,
            channel_order="RGB",
            masked_first=True,
            mask=(3, 4, 40, 50),
            audio_shape=(2, 4),
        ),  # fmt: skip
    ],
    ids=["contract", "rgb-masked-first"],
)
def test_pre_and_post_graphs_give_exactly_lipstreams_pixels(spec: ModelSpec) -> None:
    """Exact, byte for byte: full-range I420 bytes in, and model outputs beyond [0, 1] and on rounding ties out."""
    layout, rng, size = CompactLayout(spec), np.random.default_rng(0), spec.crop_size
    crops = rng.integers(0, 256, (3, size * 3 // 2, size), dtype=np.uint8)
    audio = rng.uniform(-4, 4, (3, int(np.prod(spec.audio_shape)))).astype(np.float16)
    frames = [CompactFrame(crop.tobytes(), I420, window.tobytes(), I420) for crop, window in zip(crops, audio)]
    expected = layout.build_inputs(frames)
    pre = ort.InferenceSession(graphs.pre(spec).SerializeToString(), providers=["CPUExecutionProvider"])
    image, window = pre.run([graphs.PRE_IMAGE, graphs.PRE_AUDIO], {"crop": crops, "audio": audio})
    np.testing.assert_array_equal(image, expected[spec.image_input])
    np.testing.assert_array_equal(window, expected[spec.audio_input])

    output = rng.uniform(-0.2, 1.2, (3, 3, size, size)).astype(np.float32)
    output[0, :, 0, :8] = (np.arange(8, dtype=np.float32) + 0.5) / 255  # x.5 after scaling: ties round to even
    post = ort.InferenceSession(graphs.post(spec).SerializeToString(), providers=["CPUExecutionProvider"])
    (mouths,) = post.run(None, {graphs.POST_INPUT: output})
    assert [mouth.tobytes() for mouth in mouths] == layout.encode_outputs(output, [I420] * 3)


def test_the_exported_chain_answers_what_lipstreams_server_computes(repository: Path) -> None:
    spec = ModelSpec(id=MODEL, builtin=MODEL)
    rng = np.random.default_rng(4)
    crops = rng.integers(0, 256, (2, 480, 320), dtype=np.uint8)
    audio = rng.uniform(-4, 4, (2, 8192)).astype(np.float16)
    image, window = session(repository / f"{MODEL}-compact-pre/1/model.onnx").run(None, {"crop": crops, "audio": audio})
    model = session(repository / MODEL / "1" / "model.onnx")
    (prediction,) = model.run(None, {"input": image, "audio": window})
    (mouths,) = session(repository / f"{MODEL}-compact-post/1/model.onnx").run(None, {"model_output": prediction})

    layout = CompactLayout(spec)  # what runtime.runs.run_compact does with the same session
    frames = [CompactFrame(crop.tobytes(), I420, w.tobytes(), I420) for crop, w in zip(crops, audio)]
    (direct,) = model.run(["output"], layout.build_inputs(frames))
    assert [mouth.tobytes() for mouth in mouths] == layout.encode_outputs(direct, [I420, I420])


def test_a_model_without_its_layouts_tensors_is_refused(tmp_path: Path) -> None:
    path = write_tiny_model(tmp_path / "tiny.onnx")
    spec = tiny_spec("tiny", path).model_copy(update={"image_input": "pixels"})
    with pytest.raises(ExportError, match="no tensor pixels"):
        export(spec, path, tmp_path / "repository", BatchingConfig())


def test_the_command_writes_the_repository_and_refuses_an_unknown_model(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "lipstream.cli", "models", "export-triton", "--out", str(tmp_path / "repository")]
    written = subprocess.run([*command, "--model", MODEL], capture_output=True, text=True, timeout=120)
    assert written.returncode == 0, written.stderr
    assert sorted(Path(line).parent.name for line in written.stdout.split()) == sorted(NAMES)
    unknown = subprocess.run([*command, "--model", "nope"], capture_output=True, text=True, timeout=120)
    assert unknown.returncode == 2 and "unknown model 'nope'" in unknown.stderr
