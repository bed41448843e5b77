"""NVIDIA Triton (from PyPI's nvidia-pytriton) serving an exported repository, to tritonclient and to an edge.

PyTriton's Triton runs where its Python backend stub finds the libpython it was built against
(Debian's python3.11 here, not another build of 3.11), so it runs in an interpreter of its own:
`.ci/pytriton` (which `.ci/run` makes), or LIPSTREAM_PYTRITON_PYTHON, names one with nvidia-pytriton and onnxruntime.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import numpy as np
import pytest
import tritonclient.grpc as triton
from edge_helpers import running_edge, talk
from inference_helpers import i420_crop, make_config
from kserve_helpers import compact_inputs
from tritonclient.utils import InferenceServerException

from inference_service.serving.server import InferenceServer
from lipstream.lifecycle import free_port

ROOT = Path(__file__).resolve().parents[2]
PYTRITON_PYTHON = Path(os.environ.get("LIPSTREAM_PYTRITON_PYTHON", ROOT / ".ci" / "pytriton" / "bin" / "python"))
SERVE = ROOT / "tests" / "triton_serve.py"
MODEL = "parametric-mouth"
START_TIMEOUT_S = 180


@pytest.fixture(autouse=True)
def pytriton_python() -> None:
    if not PYTRITON_PYTHON.exists():
        pytest.fail(
            f"no Python with nvidia-pytriton at {PYTRITON_PYTHON}: /usr/bin/python3.11 -m venv .ci/pytriton "
            "&& .ci/pytriton/bin/pip install nvidia-pytriton onnxruntime, as .ci/run does "
            "(or set LIPSTREAM_PYTRITON_PYTHON)"
        )


def model_ready(target: str) -> bool:
    """Whether Triton answers and has loaded MODEL-compact (PyTriton loads it after the server starts)."""
    try:
        with triton.InferenceServerClient(target) as client:
            return bool(client.is_model_ready(f"{MODEL}-compact"))
    except InferenceServerException:
        return False


@asynccontextmanager
async def triton_serving(repository: Path) -> AsyncIterator[str]:
    """Triton serving the repository's MODEL-compact on a free gRPC port; its address."""
    ports = [free_port() for _ in range(3)]
    env = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    command = [str(PYTRITON_PYTHON), str(SERVE), str(repository), f"{MODEL}-compact", *map(str, ports)]
    process = subprocess.Popen(command, env=env)
    target = f"127.0.0.1:{ports[0]}"
    try:
        deadline = asyncio.get_running_loop().time() + START_TIMEOUT_S
        while not await asyncio.to_thread(model_ready, target):
            assert process.poll() is None, f"Triton exited with {process.returncode}"
            assert asyncio.get_running_loop().time() < deadline, "Triton did not load the model in time"
            await asyncio.sleep(0.2)
        yield target
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def export(repository: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "lipstream.cli",
        "models",
        "export-triton",
        "--model",
        MODEL,
        "--out",
        str(repository),
    ]
    subprocess.run(command, check=True, capture_output=True, timeout=300)


async def test_triton_serves_the_export_as_lipstream_does_and_an_edge_talks_through_it(tmp_path: Path) -> None:
    await asyncio.to_thread(export, tmp_path / "repository")
    crop = i420_crop(320, seed=11)
    audio = np.random.default_rng(3).uniform(-4, 4, 8192).astype(np.float16)

    def mouth(target: str) -> np.ndarray:
        with triton.InferenceServerClient(target) as client:
            return client.infer(f"{MODEL}-compact", compact_inputs(crop, 320, audio)).as_numpy("mouth")

    async with InferenceServer(make_config(registry={"preload": [MODEL]})) as lipstream:
        expected = await asyncio.to_thread(mouth, f"127.0.0.1:{lipstream.port}")
    async with triton_serving(tmp_path / "repository") as target:
        served = await asyncio.to_thread(mouth, target)
        difference = np.abs(served.astype(int) - expected).max()
        assert difference <= 1, f"Triton's answer differs from lipstream's by {difference}"

        inference = {"targets": [target], "protocol": "kserve"}
        # Triton's Python backend adds hops lipstream's server does not have: frames go out further ahead.
        sessions = {"pipeline_frames": 6}
        edge_running = running_edge(with_inference=False, inference=inference, sessions=sessions)
        async with edge_running as edge, aiohttp.ClientSession() as http:
            motion = await talk(http, edge, seconds=2.0, timeout_s=30)
    assert motion.idle.max() < 4, "the mouth moved in silence"
    assert np.percentile(motion.speaking, 90) > 12, "speech through Triton did not move the mouth"
