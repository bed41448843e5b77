"""`lipstream bench gpu` and `benchmarks/gpu.sh`, run on the CPU (`--device cpu`, small sizes): the shape of
the JSON, a real server, both precisions; `--device cuda` without a GPU fails saying why, measuring nothing."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from lipstream.cli import main

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["--model", "parametric-mouth", "--batches", "1,2", "--streams", "1,2", "--seconds", "0.5"]


def check_report(result: dict, backend: str, provider: str, precisions: list[str]) -> None:
    assert result["bench"] == "gpu" and result["device"] == "cpu" and result["measured_on_gpu"] is False
    assert result["backend"] == backend and result["provider"] == provider
    assert result["settings"]["device_layout"] == "on", "the path a GPU serves, and no OpenCV needed"
    assert all(len(load) == 3 for load in result["machine"]["load_average"].values())
    assert list(result["precisions"]) == precisions
    for measured in result["precisions"].values():
        assert [run["batch"] for run in measured["batches"]] == [1, 2]
        for run in measured["batches"]:
            assert run["frames_per_s"] > 0 and run["latency_ms"]["p99"] >= run["latency_ms"]["p50"] > 0
        runs = measured["streams"]["runs"]
        assert runs and runs[0]["streams"] == 1
        for run in runs:
            assert run["frames"] > 0 and run["errors"] == 0
            assert run["sustained"] == (run["fps_per_stream"] >= 24.5 and run["latency_ms"]["p99"] < 40)
        sustained = [run["streams"] for run in runs if run["sustained"]]
        assert measured["sustained_sessions"] == max(sustained, default=0)


def test_bench_gpu_on_the_cpu_measures_both_precisions_through_a_real_server(tmp_path: Path) -> None:
    out = tmp_path / "gpu.json"
    assert main(["bench", "gpu", "--device", "cpu", *SMALL, "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    check_report(result, "onnxruntime", "CPUExecutionProvider", ["fp32", "fp16"])
    comparison = result["fp16_vs_fp32"]
    assert set(comparison["frames_per_s_ratio_by_batch"]) == {"1", "2"}
    assert all(ratio > 0 for ratio in comparison["frames_per_s_ratio_by_batch"].values())
    assert comparison["sustained_sessions"] == {
        p: result["precisions"][p]["sustained_sessions"] for p in ("fp32", "fp16")
    }


def test_bench_gpu_with_the_torch_backend(tmp_path: Path) -> None:
    out = tmp_path / "gpu.json"
    argv = ["bench", "gpu", "--device", "cpu", "--backend", "torch", "--precisions", "fp32", *SMALL]
    assert main([*argv, "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    check_report(result, "torch", "TorchCPU", ["fp32"])
    assert result["fp16_vs_fp32"] is None


def test_bench_gpu_asked_for_cuda_without_one_fails_and_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "gpu.json"
    assert main(["bench", "gpu", "--device", "cuda", *SMALL, "--json", str(out)]) == 1
    assert "--device cuda, but the model runs on TorchCPU: torch" in capsys.readouterr().err
    assert not out.exists()


def test_gpu_sh_installs_from_the_wheelhouse_alone_and_runs_the_bench(tmp_path: Path) -> None:
    """No registry and no pip configuration: what is missing must come from the wheelhouse (here nothing is)."""
    out = tmp_path / "gpu.json"
    env = dict(os.environ, LIPSTREAM_WHEELHOUSE=str(tmp_path / "wheels"), PIP_CONFIG_FILE=os.devnull)
    (tmp_path / "wheels").mkdir()
    command = ["bash", "benchmarks/gpu.sh", "--device", "cpu", "--precisions", "fp32", *SMALL, "--json", str(out)]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "fp32: " in done.stdout and "sessions at 25 fps with p99 < 40 ms" in done.stdout
    check_report(json.loads(out.read_text()), "onnxruntime", "CPUExecutionProvider", ["fp32"])
