"""`lipstream serve` as a user runs it: its inference child is restarted when it dies or hangs,
and never outlives it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import aiohttp
import psutil
import pytest

from lipstream.lifecycle import free_port

HUNG_S = 3.0


@contextmanager
def serving() -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    command = [sys.executable, "-m", "lipstream.cli", "--log-level", "WARNING", "serve", "--port", str(port),
               "--metrics-port", "0", "--inference-hung-s", str(HUNG_S)]  # fmt: skip
    process = subprocess.Popen(command, env=os.environ.copy())
    try:
        yield process, f"http://127.0.0.1:{port}"
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=20)


async def health_is(http: aiohttp.ClientSession, url: str, status: int, timeout_s: float) -> float:
    """Seconds until GET /health answers `status`; fails the test past `timeout_s`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        try:
            async with http.get(f"{url}/health") as response:
                if response.status == status:
                    return time.monotonic() - started
        except aiohttp.ClientConnectionError:
            pass
        await asyncio.sleep(0.2)
    pytest.fail(f"/health did not answer {status} within {timeout_s:g} s")


def inference_child(serve: subprocess.Popen[bytes]) -> psutil.Process:
    (child,) = psutil.Process(serve.pid).children()
    return child


async def test_a_dead_or_hung_inference_child_is_restarted_and_health_says_so() -> None:
    with serving() as (serve, url):
        async with aiohttp.ClientSession() as http:
            await health_is(http, url, 200, timeout_s=120)
            first = inference_child(serve)
            first.kill()
            await health_is(http, url, 503, timeout_s=10)
            await health_is(http, url, 200, timeout_s=60)
            second = inference_child(serve)
            assert second.pid != first.pid

            second.suspend()  # frozen: alive, but answers nothing
            await health_is(http, url, 503, timeout_s=10)
            await health_is(http, url, 200, timeout_s=60)
            assert not second.is_running() or second.status() == psutil.STATUS_ZOMBIE, "the hung child must go"
            assert inference_child(serve).pid not in (first.pid, second.pid)
        assert serve.poll() is None, "the edge itself must keep running through all of it"


async def test_the_inference_child_dies_with_serve() -> None:
    with serving() as (serve, url):
        async with aiohttp.ClientSession() as http:
            await health_is(http, url, 200, timeout_s=120)
        child = inference_child(serve)
        serve.send_signal(signal.SIGKILL)  # no chance to clean up
        serve.wait(timeout=10)
        gone, _ = psutil.wait_procs([child], timeout=10)
        assert gone, "the inference child outlived `lipstream serve`"
