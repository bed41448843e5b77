"""The torch backend on the CPU build of torch: the same answers as onnxruntime for the same model files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from inference_helpers import tiny_spec, write_tiny_model
from onnx import TensorProto, helper

from inference_service.config import ModelSpec, RuntimeConfig
from inference_service.models.builtin import ensure_builtin
from inference_service.runtime.backends import open_session
from inference_service.runtime.probe import random_feeds
from inference_service.runtime.torch_graph import UnsupportedGraph, load_onnx
from inference_service.runtime.torch_session import CPU_NAME

pytestmark = pytest.mark.unit

REQUESTED = ["CUDAExecutionProvider", "CPUExecutionProvider"]  # as `auto` asks on a GPU machine


def both(path: str, spec: ModelSpec, batch: int, **runtime: object) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The model's outputs from onnxruntime and from the torch backend, for the same random inputs."""
    reference = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    feeds = random_feeds(reference.get_inputs(), batch, seed=3)
    session, choice = open_session(path, spec, RuntimeConfig(backend="torch", **runtime), REQUESTED)
    assert choice.in_use == [CPU_NAME]
    assert "a CPU build" in choice.fallback_reason, "the CPU build cannot honour the GPU asked for, and says so"
    return reference.run(None, feeds), session.run(None, feeds)


@pytest.mark.parametrize(("name", "batch"), [("parametric-mouth", 3), ("synthetic-unet", 1)])
def test_both_built_in_models_answer_as_onnxruntime_does(name: str, batch: int) -> None:
    expected, got = both(str(ensure_builtin(name)), ModelSpec(id=name, builtin=name), batch)
    assert got[0].dtype == np.float32 and got[0].shape == expected[0].shape == (batch, 3, 320, 320)
    np.testing.assert_allclose(got[0], expected[0], atol=1e-4, rtol=0)


def test_the_test_models_ops_answer_as_onnxruntime_does(tmp_path: Path) -> None:
    path = write_tiny_model(tmp_path / "tiny.onnx", gain=0.7)
    expected, got = both(str(path), tiny_spec("tiny", path), 2)
    np.testing.assert_allclose(got[0], expected[0], atol=1e-6, rtol=0)


def test_fp16_on_the_cpu_stays_close(tmp_path: Path) -> None:
    """What runs on a GPU by default (fp16), checked for sense here: within a few 8-bit levels."""
    path = str(ensure_builtin("parametric-mouth"))
    expected, got = both(path, ModelSpec(id="m", builtin="parametric-mouth"), 1, torch_precision="fp16")
    assert got[0].dtype == np.float32
    assert np.abs(got[0] - expected[0]).mean() < 2 / 255


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::torch.jit.TracerWarning")
@pytest.mark.parametrize("suffix", [".pt2", ".pt"], ids=["torch.export", "TorchScript"])
def test_a_torch_file_serves_under_the_models_tensor_names(tmp_path: Path, suffix: str) -> None:
    """A model saved by torch itself: the config entry names its tensors; the batch axis stays dynamic."""
    source = str(ensure_builtin("parametric-mouth"))
    reference = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    example = tuple(torch.from_numpy(a) for a in random_feeds(reference.get_inputs(), 2, seed=5).values())
    target = tmp_path / f"model{suffix}"
    if suffix == ".pt2":
        batch = torch.export.Dim("batch", min=1, max=64)
        exported = torch.export.export(load_onnx(source), example, dynamic_shapes=(({0: batch}, {0: batch}),))
        torch.export.save(exported, str(target))
    else:
        torch.jit.trace(load_onnx(source), example, check_trace=False).save(str(target))
    spec = ModelSpec(id="saved", path=str(target))
    session, _ = open_session(str(target), spec, RuntimeConfig(backend="torch"), ["CPUExecutionProvider"])
    assert [arg.name for arg in session.get_inputs()] == ["input", "audio"]
    assert [arg.shape for arg in session.get_outputs()] == [[None, 3, 320, 320]]
    feeds = random_feeds(reference.get_inputs(), 3, seed=6)
    np.testing.assert_allclose(session.run(["output"], feeds)[0], reference.run(None, feeds)[0], atol=1e-4, rtol=0)


def test_an_op_the_converter_lacks_is_named_at_load(tmp_path: Path) -> None:
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([helper.make_node("Softmax", ["input"], ["output"], name="odd")], "g", [x], [y])
    with pytest.raises(UnsupportedGraph, match="op Softmax \\(node 'odd'\\)"):
        load_onnx_model(graph)


def load_onnx_model(graph: onnx.GraphProto) -> None:
    from inference_service.runtime.torch_graph import OnnxModule

    OnnxModule(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
