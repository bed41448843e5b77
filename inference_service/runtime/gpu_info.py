"""The machine's NVIDIA GPUs as the driver reports them: nvidia-smi, or NVML when nvidia-smi is absent.

Only the driver is asked (no CUDA toolkit, no torch), so `lipstream doctor` can tell a missing
driver from a missing library.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

QUERY = "name,memory.total,memory.free,driver_version"


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    memory_total_mb: int
    memory_free_mb: int
    driver: str


@dataclass(frozen=True)
class GpuReport:
    gpus: list[Gpu]
    source: str  # nvidia-smi, nvml, or "" when neither answered
    note: str = ""  # why no GPU is listed


def parse_nvidia_smi(text: str) -> list[Gpu]:
    """`nvidia-smi --query-gpu=QUERY --format=csv,noheader,nounits` output, one GPU per line."""
    gpus = []
    for index, line in enumerate(row for row in text.splitlines() if row.strip()):
        name, total, free, driver = (cell.strip() for cell in line.split(","))
        gpus.append(Gpu(index, name, int(float(total)), int(float(free)), driver))
    return gpus


def query(
    which: Callable[[str], str | None] = shutil.which,
    run: Callable[..., Any] = subprocess.run,
    nvml: Callable[[], list[Gpu]] | None = None,
) -> GpuReport:
    smi = which("nvidia-smi")
    reasons = []
    if smi:
        try:
            done = run(
                [smi, f"--query-gpu={QUERY}", "--format=csv,noheader,nounits"],
                capture_output=True,
                text=True,
                timeout=20,
            )
            if done.returncode == 0:
                return GpuReport(parse_nvidia_smi(done.stdout), "nvidia-smi")
            reasons.append(f"nvidia-smi failed: {(done.stderr or done.stdout).strip()[:300]}")
        except (OSError, subprocess.TimeoutExpired, ValueError) as exc:
            reasons.append(f"nvidia-smi failed: {exc}")
    else:
        reasons.append("nvidia-smi is not on PATH")
    try:
        return GpuReport((nvml or _nvml_gpus)(), "nvml")
    except OSError as exc:
        reasons.append(f"NVML cannot be loaded ({exc})")
    except RuntimeError as exc:
        reasons.append(f"NVML: {exc}")
    return GpuReport([], "", "no NVIDIA driver answers: " + "; ".join(reasons))


def _nvml_gpus() -> list[Gpu]:
    """NVML through ctypes (libnvidia-ml.so.1 comes with the driver): OSError when it is absent."""
    lib = ctypes.CDLL("libnvidia-ml.so.1")

    def check(code: int, what: str) -> None:
        if code != 0:
            raise RuntimeError(f"{what} returned {code}")

    class Memory(ctypes.Structure):
        _fields_ = [("total", ctypes.c_ulonglong), ("free", ctypes.c_ulonglong), ("used", ctypes.c_ulonglong)]

    check(lib.nvmlInit_v2(), "nvmlInit")
    try:
        driver = ctypes.create_string_buffer(96)
        check(lib.nvmlSystemGetDriverVersion(driver, 96), "nvmlSystemGetDriverVersion")
        count = ctypes.c_uint()
        check(lib.nvmlDeviceGetCount_v2(ctypes.byref(count)), "nvmlDeviceGetCount")
        gpus = []
        for index in range(count.value):
            handle = ctypes.c_void_p()
            check(lib.nvmlDeviceGetHandleByIndex_v2(index, ctypes.byref(handle)), "nvmlDeviceGetHandleByIndex")
            name = ctypes.create_string_buffer(96)
            check(lib.nvmlDeviceGetName(handle, name, 96), "nvmlDeviceGetName")
            memory = Memory()
            check(lib.nvmlDeviceGetMemoryInfo(handle, ctypes.byref(memory)), "nvmlDeviceGetMemoryInfo")
            mb = 1024 * 1024
            gpus.append(Gpu(index, name.value.decode(), memory.total // mb, memory.free // mb, driver.value.decode()))
        return gpus
    finally:
        lib.nvmlShutdown()
