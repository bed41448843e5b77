"""`lipstream doctor` on this machine's CPU build, and on simulated GPU failures (no GPU here)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import onnxruntime as ort
import pytest

from inference_service.config import InferenceConfig
from inference_service.runtime import gpu_info, nvidia
from inference_service.runtime.probe import classify
from inference_service.runtime.torch_probe import TorchProbe
from inference_service.serving import doctor
from lipstream.cli import main

pytestmark = pytest.mark.unit

CUDA, CPU = "CUDAExecutionProvider", "CPUExecutionProvider"
NO_GPU = gpu_info.GpuReport([], "", "no NVIDIA driver answers: nvidia-smi is not on PATH")
NO_TORCH = TorchProbe(False, "not installed")


@pytest.fixture(autouse=True)
def fresh_preload() -> Any:
    nvidia.reset()
    yield
    nvidia.reset()


def fake_runtime(factory: Any, preload_calls: list[dict] | None = None) -> SimpleNamespace:
    """An onnxruntime-gpu as it looks from Python: CUDA offered, sessions made by `factory`."""
    calls = preload_calls if preload_calls is not None else []
    return SimpleNamespace(
        __version__="1.31.1",
        get_available_providers=lambda: [CUDA, CPU],
        InferenceSession=factory,
        preload_dlls=lambda **kwargs: calls.append(kwargs),
    )


def cpu_session(path: str, providers: list) -> Any:
    return ort.InferenceSession(path, providers=[CPU])


def test_on_this_machine_the_cpu_works_and_cuda_is_absent_with_the_reason(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert f"onnxruntime {ort.__version__}: offers" in out
    assert "NVIDIA libraries: skipped (this onnxruntime build has no CUDA provider (the CPU wheel))" in out
    lines = {line.split(":")[0].strip(): line for line in out.splitlines() if "ExecutionProvider:" in line}
    assert "works, batch 1 in" in lines[CPU]
    assert "not in this build" in lines[CUDA] and "install '.[gpu]'" in lines[CUDA]
    assert "GPUs:" in out and ("none: no NVIDIA driver answers" in out or "MiB" in out)
    assert out.rstrip().endswith("OK: the configured providers run.")


def test_json_report_and_an_explicit_cuda_config_fails_on_a_cpu_build(tmp_path: Path) -> None:
    config = tmp_path / "inference.yaml"
    config.write_text("runtime:\n  providers: [cuda, cpu]\n")
    out = tmp_path / "doctor.json"
    assert main(["doctor", "--config", str(config), "--json", str(out)]) == 1
    report = json.loads(out.read_text())
    assert report["ok"] is False and report["failing"] == [CUDA]
    assert report["configured"]["must_run"] == [CUDA, CPU]
    cpu = next(p for p in report["providers"] if p["provider"] == CPU)
    assert cpu["started"] and cpu["latency_ms"] > 0


@pytest.mark.parametrize(
    ("failure", "cause"),
    [
        ("libcudnn.so.9: cannot open shared object file: No such file or directory", "missing library: libcudnn.so.9"),
        ("CUDA failure 35: CUDA driver version is insufficient for CUDA runtime version", "driver too old"),
        ("CUDA failure 2: out of memory", "out of memory"),
        ("CUDA failure 100: no CUDA-capable device is detected", "no GPU device"),
    ],
)
def test_a_cuda_provider_that_raises_is_named_with_its_cause_and_fails_the_check(failure: str, cause: str) -> None:
    def factory(path: str, providers: list) -> Any:
        if providers[0][0] == CUDA:
            raise RuntimeError(failure)
        return cpu_session(path, providers)

    config = InferenceConfig()
    report = doctor.diagnose(config, "parametric-mouth", runtime=fake_runtime(factory), gpus=NO_GPU, torch=NO_TORCH)
    probes = {p["provider"]: p for p in report["providers"]}
    assert probes[CUDA]["started"] is False and probes[CUDA]["cause"] == cause
    assert failure.split(":")[0] in probes[CUDA]["reason"]
    assert probes[CPU]["started"] is True
    assert report["ok"] is False and report["failing"] == [CUDA], "auto needs every provider the build offers"


def test_a_silent_fall_back_to_cpu_is_caught_from_what_onnxruntime_printed() -> None:
    """onnxruntime-gpu prints the provider error and hands back a CPU session instead of raising."""

    def factory(path: str, providers: list) -> Any:
        if providers[0][0] == CUDA:
            print("EP Error: Failed to load library libonnxruntime_providers_cuda.so with error: libcublasLt.so.12: "
                  "cannot open shared object file: No such file or directory")  # fmt: skip
            print("Falling back to ['CPUExecutionProvider'] and retrying.")
        return cpu_session(path, providers)

    report = doctor.diagnose(
        InferenceConfig(), "parametric-mouth", runtime=fake_runtime(factory), gpus=NO_GPU, torch=NO_TORCH
    )
    cuda = next(p for p in report["providers"] if p["provider"] == CUDA)
    assert cuda["started"] is False
    assert cuda["cause"] == "missing library: libcublasLt.so.12"
    assert "libonnxruntime_providers_cuda.so" in cuda["reason"]


def test_out_of_memory_at_the_first_run_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    class OutOfMemory:
        def __init__(self, path: str, providers: list) -> None:
            self._session = cpu_session(path, providers)

        def get_providers(self) -> list[str]:
            return [CUDA, CPU]

        def get_inputs(self) -> Any:
            return self._session.get_inputs()

        def get_outputs(self) -> Any:
            return self._session.get_outputs()

        def run(self, *args: Any) -> Any:
            raise RuntimeError("CUDA failure 2: out of memory; GPU=0")

    def factory(path: str, providers: list) -> Any:
        return OutOfMemory(path, providers) if providers[0][0] == CUDA else cpu_session(path, providers)

    gpus = gpu_info.GpuReport([gpu_info.Gpu(0, "NVIDIA H100 80GB HBM3", 81559, 12, "580.65.06")], "nvidia-smi")
    report = doctor.diagnose(InferenceConfig(), "parametric-mouth", runtime=fake_runtime(factory), gpus=gpus,
                             torch=NO_TORCH)  # fmt: skip
    doctor.render(report, out := __import__("io").StringIO())
    text = out.getvalue()
    assert f"{CUDA}: does not start: out of memory" in text
    assert "0: NVIDIA H100 80GB HBM3, 81559 MiB (12 free), driver 580.65.06 (from nvidia-smi)" in text
    assert text.rstrip().endswith(f"FAIL: configured but cannot run: {CUDA}")


def test_a_working_simulated_cuda_provider_passes_and_the_libraries_are_preloaded_first() -> None:
    calls: list[dict] = []

    class OnCuda:
        def __init__(self, path: str, providers: list) -> None:
            self._session = cpu_session(path, providers)
            self.get_inputs, self.get_outputs, self.run = (
                self._session.get_inputs, self._session.get_outputs, self._session.run
            )  # fmt: skip

        def get_providers(self) -> list[str]:
            return [CUDA, CPU]

    report = doctor.diagnose(InferenceConfig(), "parametric-mouth", runtime=fake_runtime(OnCuda, calls), gpus=NO_GPU,
                             torch=NO_TORCH)  # fmt: skip
    assert report["ok"] is True and report["failing"] == []
    assert calls == [{"cuda": True, "cudnn": True, "msvc": False}]
    assert report["nvidia_preload"]["status"] == "loaded"


def test_preload_is_skipped_on_the_cpu_build_when_disabled_and_reports_a_failure() -> None:
    assert nvidia.preload(ort).status == "skipped"
    nvidia.reset()
    assert "preload_nvidia_libraries is false" in nvidia.preload(fake_runtime(None), enabled=False).detail
    nvidia.reset()
    broken = fake_runtime(None)
    broken.preload_dlls = lambda **_: (_ for _ in ()).throw(RuntimeError("Invalid parameter of directory"))
    result = nvidia.preload(broken)
    assert result.status == "failed" and "Invalid parameter of directory" in result.detail
    nvidia.reset()
    old = fake_runtime(None)
    del old.preload_dlls
    assert "has no preload_dlls" in nvidia.preload(old).detail


def test_loaded_libraries_are_read_from_the_process_map(tmp_path: Path) -> None:
    maps = tmp_path / "maps"
    maps.write_text(
        "7f00-7f01 r-xp 00000000 08:01 1 /venv/lib/python3.11/site-packages/nvidia/cudnn/lib/libcudnn.so.9\n"
        "7f02-7f03 r-xp 00000000 08:01 2 /venv/lib/python3.11/site-packages/nvidia/cublas/lib/libcublasLt.so.12\n"
        "7f04-7f05 r-xp 00000000 08:01 3 /usr/lib/x86_64-linux-gnu/libc.so.6\n"
    )
    assert sorted(nvidia.loaded_libraries(maps)) == ["libcublasLt", "libcudnn"]


def test_gpu_info_parses_nvidia_smi_and_says_why_when_there_is_no_driver() -> None:
    def run(command: list[str], **_: Any) -> Any:
        assert command[1] == f"--query-gpu={gpu_info.QUERY}"
        return subprocess.CompletedProcess(command, 0, "NVIDIA H100 80GB HBM3, 81559, 81000, 580.65.06\n", "")

    report = gpu_info.query(which=lambda _: "/usr/bin/nvidia-smi", run=run)
    assert report.gpus == [gpu_info.Gpu(0, "NVIDIA H100 80GB HBM3", 81559, 81000, "580.65.06")]

    def no_nvml() -> list[gpu_info.Gpu]:
        raise OSError("libnvidia-ml.so.1: cannot open shared object file")

    absent = gpu_info.query(which=lambda _: None, nvml=no_nvml)
    assert absent.gpus == [] and "nvidia-smi is not on PATH" in absent.note and "libnvidia-ml.so.1" in absent.note


def test_classify_names_causes_and_libraries() -> None:
    assert classify("error while loading shared libraries: libcudart.so.13") == "missing library: libcudart.so.13"
    assert classify("something else entirely") == "failed to start"


def test_the_torch_backend_is_timed_on_this_cpu_build_and_fails_the_check_when_torch_is_missing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = InferenceConfig.model_validate({"runtime": {"backend": "torch"}})
    report = doctor.diagnose(config, "parametric-mouth", gpus=NO_GPU)
    assert report["ok"] is True and report["backend"] == "torch"
    (cpu,) = report["torch"]["devices"]
    assert cpu["device"] == "cpu" and cpu["started"] and cpu["latency_ms"] > 0
    assert "a CPU build, no GPU visible" in report["torch"]["summary"]

    missing = doctor.diagnose(config, "parametric-mouth", gpus=NO_GPU, torch=NO_TORCH)
    assert missing["ok"] is False and missing["failing"] == ["torch"]


def test_the_model_is_also_opened_as_the_server_opens_it_with_the_settings_that_do_not_apply(tmp_path: Path) -> None:
    config = tmp_path / "inference.yaml"
    config.write_text("runtime:\n  cuda_graphs: true\n")
    out = tmp_path / "doctor.json"
    assert main(["doctor", "--config", str(config), "--json", str(out)]) == 0, "a note, not a failure"
    served = json.loads(out.read_text())["served"]
    assert served["runs_on"] == CPU
    assert served["notes"] == [
        "cuda_graphs ignored: they need onnxruntime's CUDA provider, this model runs on CPUExecutionProvider"
    ]
