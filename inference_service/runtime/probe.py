"""Whether each execution provider really starts, why not, and how long one inference takes on it.

A provider listed by `get_available_providers()` is only compiled in: the CUDA provider of
onnxruntime-gpu still needs the CUDA libraries, a new enough driver and free GPU memory at
session start, and when any is missing onnxruntime prints the reason and quietly runs on the
CPU. A probe opens the model on that provider alone, keeps what the runtime printed, and names
the cause in words a person can act on.
"""

from __future__ import annotations

import io
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from typing import Any

import numpy as np

from inference_service.runtime.providers import CPU, ORT_NAMES, SessionFactory

# (cause, patterns): the first cause whose pattern is in the runtime's message wins.
CAUSES: list[tuple[str, tuple[str, ...]]] = [
    (
        "missing library",
        ("cannot open shared object", "error while loading shared libraries", "failed to load library"),
    ),
    ("driver too old", ("driver version is insufficient", "insufficient_driver", "insufficientdriver")),
    ("out of memory", ("out of memory", "memoryallocation", "failed to allocate")),
    ("no GPU device", ("no cuda-capable device", "cudaerrornodevice", "no_device")),
]
LIBRARY = re.compile(r"(lib[\w+-]+\.so(?:\.\d+)*)")
MISSING = re.compile(r"(lib[\w+-]+\.so(?:\.\d+)*): cannot open shared object")  # the one really absent


@dataclass
class ProviderProbe:
    """One provider's verdict; `latency_ms` is the median of a few timed runs once it started."""

    provider: str
    in_build: bool
    started: bool
    cause: str = ""
    reason: str = ""
    latency_ms: float | None = None
    batch: int = 1


def classify(message: str) -> str:
    """The cause a runtime's failure message points at, with the library it names when one is missing."""
    lowered = message.lower()
    for cause, patterns in CAUSES:
        if any(pattern in lowered for pattern in patterns):
            if cause == "missing library" and (match := MISSING.search(message) or LIBRARY.search(message)):
                return f"{cause}: {match.group(1)}"
            return cause
    return "failed to start"


@contextmanager
def captured_output() -> Iterator[list[str]]:
    """What native code and Python print to fds 1 and 2 meanwhile (onnxruntime explains fall-backs there)."""
    sink: list[str] = []
    sys.stdout.flush()
    sys.stderr.flush()
    python_side = io.StringIO()  # sys.stdout may not be fd 1 (a test runner's capture, a notebook)
    with tempfile.TemporaryFile() as temp:
        saved = [os.dup(1), os.dup(2)]
        os.dup2(temp.fileno(), 1)
        os.dup2(temp.fileno(), 2)
        try:
            with redirect_stdout(python_side), redirect_stderr(python_side):
                yield sink
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            temp.seek(0)
            sink.append(python_side.getvalue() + temp.read().decode(errors="replace"))


def random_feeds(inputs: Sequence[Any], batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Inputs of the session's signature (dynamic axes = `batch`), values in [0, 1)."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for arg in inputs:
        shape = [dim if isinstance(dim, int) else batch for dim in arg.shape]
        dtype = np.float16 if arg.type == "tensor(float16)" else np.float32
        feeds[arg.name] = rng.random(shape, dtype=np.float32).astype(dtype)
    return feeds


def time_runs(run: Callable[[], Any], repeats: int = 3) -> float:
    """Median milliseconds of `repeats` runs after one warm-up run."""
    run()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def probe_provider(
    provider: str,
    model_path: str,
    *,
    available: Sequence[str],
    session_factory: SessionFactory,
    device_id: int = 0,
    batch: int = 1,
) -> ProviderProbe:
    """Open `model_path` on `provider` alone and time one batch on it."""
    if provider not in available:
        hint = " (install '.[gpu]': onnxruntime-gpu)" if provider != CPU else ""
        return ProviderProbe(provider, False, False, "not in this build", f"this onnxruntime has no {provider}{hint}")
    options = {} if provider == CPU else {"device_id": device_id}
    session = None
    with captured_output() as printed:
        try:
            session = session_factory(model_path, providers=[(provider, options)])
        except Exception as exc:  # noqa: BLE001 - every failure is a verdict, not a crash
            error = str(exc)
    said = printed[0].strip() if printed else ""
    if session is None:
        message = "\n".join(part for part in (error, said) if part)
        return ProviderProbe(provider, True, False, classify(message), _short(message))
    in_use = list(session.get_providers())
    if provider not in in_use:
        message = said or f"onnxruntime fell back to {in_use[0]} without saying why"
        return ProviderProbe(provider, True, False, classify(message), _short(message))
    feeds = random_feeds(session.get_inputs(), batch)
    outputs = [arg.name for arg in session.get_outputs()]
    try:
        latency = time_runs(lambda: session.run(outputs, feeds))
    except Exception as exc:  # noqa: BLE001 - e.g. out of memory at the first run
        return ProviderProbe(provider, True, False, classify(str(exc)), _short(str(exc)))
    return ProviderProbe(provider, True, True, latency_ms=latency, batch=batch)


def providers_to_probe(available: Sequence[str], requested: Sequence[str]) -> list[str]:
    """The providers lipstream can configure (TensorRT, CUDA, CPU), best first: others in a build
    (Azure's remote endpoint, say) are listed as offered but are not inference devices here."""
    return [name for name in ORT_NAMES.values() if name in available or name in requested or name == CPU]


def _short(message: str, limit: int = 600) -> str:
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    text = " | ".join(lines)
    return text if len(text) <= limit else text[: limit - 1] + "…"
