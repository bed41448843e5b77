"""`lipstream models convert --fp16`: float16 weights, float32 tensors kept, answers within fp16's reach."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from inference_service.models.builtin import ensure_builtin
from inference_service.runtime.probe import random_feeds
from lipstream.cli import main

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("name", "max_mean_error"), [("synthetic-unet", 1e-3), ("parametric-mouth", 2 / 255)])
def test_convert_writes_a_float16_model_that_answers_like_the_original(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, max_mean_error: float
) -> None:
    target = tmp_path / f"{name}-fp16.onnx"
    assert main(["models", "convert", name, "--fp16", "--out", str(target)]) == 0
    assert capsys.readouterr().out.strip() == str(target)
    source = ensure_builtin(name)
    model = onnx.load(str(target))
    weights = [init for init in model.graph.initializer if init.data_type in (onnx.TensorProto.FLOAT16, 1)]
    assert sum(init.data_type == onnx.TensorProto.FLOAT16 for init in weights) > len(weights) / 2
    assert target.stat().st_size < 0.6 * source.stat().st_size or name == "parametric-mouth"
    original = ort.InferenceSession(str(source), providers=["CPUExecutionProvider"])
    half = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    assert [(a.name, a.type) for a in half.get_inputs()] == [(a.name, a.type) for a in original.get_inputs()]
    assert [(a.name, a.type) for a in half.get_outputs()] == [("output", "tensor(float)")]
    feeds = random_feeds(original.get_inputs(), 1, seed=2)
    difference = np.abs(half.run(None, feeds)[0] - original.run(None, feeds)[0])
    assert difference.mean() < max_mean_error


def test_convert_without_a_model_says_what_it_takes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "convert", "no-such-model", "--fp16"]) == 2
    assert "neither a file nor a built-in model" in capsys.readouterr().err
