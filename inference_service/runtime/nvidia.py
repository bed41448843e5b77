"""The NVIDIA libraries onnxruntime-gpu's CUDA provider needs, loaded from the pip wheels.

`pip install '.[gpu]'` brings onnxruntime-gpu with its `cuda` and `cudnn` extras: the CUDA
runtime, cuBLAS, cuFFT, cuRAND and cuDNN of the CUDA major version that wheel was built for, as
`nvidia-*` wheels in site-packages. The dynamic loader does not look there, so without a preload
a machine that has only the NVIDIA driver fails to start the CUDA provider (the failure that took
down the system lipstream replaces). onnxruntime (>= 1.21) ships `preload_dlls()`, which loads
them from site-packages; this module calls it once, before any session, and says what happened.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

log = logging.getLogger(__name__)

CUDA_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider")
# The libraries the CUDA provider links: what a doctor looks for in the process once preloaded.
WATCHED = ("libcudart", "libcublas", "libcublasLt", "libcufft", "libcurand", "libcudnn", "libnvrtc")


@dataclass(frozen=True)
class PreloadResult:
    """What the preload did: `status` is loaded, skipped or failed; `libraries` maps a name to its file."""

    status: str
    detail: str
    libraries: dict[str, str] = field(default_factory=dict)


_lock = threading.Lock()
_done: PreloadResult | None = None


def loaded_libraries(maps: Path = Path("/proc/self/maps")) -> dict[str, str]:
    """The watched NVIDIA libraries mapped into this process, by name (Linux; empty elsewhere)."""
    try:
        text = maps.read_text()
    except OSError:
        return {}
    found: dict[str, str] = {}
    for line in text.splitlines():
        path = line.rsplit(" ", 1)[-1]
        match = re.search(r"/(lib[A-Za-z]+)\.so[.\d]*$", path)
        if match and match.group(1) in WATCHED:
            found.setdefault(match.group(1), path)
    return found


def preload(ort: ModuleType | Any, enabled: bool = True, maps: Path = Path("/proc/self/maps")) -> PreloadResult:
    """Load the CUDA/cuDNN wheels' libraries for `ort` (the onnxruntime module) once per process."""
    global _done
    with _lock:
        if _done is not None:
            return _done
        result = _preload(ort, enabled, maps)
        if result.status == "failed":
            log.warning("preloading the NVIDIA libraries failed: %s", result.detail)
        else:
            log.info("NVIDIA libraries: %s (%s)", result.status, result.detail)
        _done = result
        return result


def reset() -> None:
    """Forget the result (tests load a simulated runtime after the real one)."""
    global _done
    with _lock:
        _done = None


def _preload(ort: Any, enabled: bool, maps: Path) -> PreloadResult:
    if not enabled:
        return PreloadResult("skipped", "runtime.preload_nvidia_libraries is false")
    offered = [name for name in ort.get_available_providers() if name in CUDA_PROVIDERS]
    if not offered:
        return PreloadResult("skipped", "this onnxruntime build has no CUDA provider (the CPU wheel)")
    preload_dlls = getattr(ort, "preload_dlls", None)
    if preload_dlls is None:
        version = getattr(ort, "__version__", "?")
        return PreloadResult(
            "skipped", f"onnxruntime {version} has no preload_dlls (1.21 or newer has): the system's library path"
        )
    try:
        # cuda and cudnn from the nvidia-* wheels in site-packages first, then the default paths;
        # msvc is Windows only.
        preload_dlls(cuda=True, cudnn=True, msvc=False)
    except Exception as exc:  # noqa: BLE001 - a bad directory or a broken wheel: say so, the session will tell more
        return PreloadResult("failed", f"onnxruntime.preload_dlls: {exc}", loaded_libraries(maps))
    libraries = loaded_libraries(maps)
    names = ", ".join(sorted(libraries)) or "none found in the process (onnxruntime may load them itself)"
    return PreloadResult("loaded", f"for {', '.join(offered)}: {names}", libraries)
