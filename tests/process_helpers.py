"""`lipstream serve` run as a user runs it, in its own process group of processes, for the tests."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import aiohttp
import pytest

from lipstream.lifecycle import free_port


@contextmanager
def serving(*arguments: str, env: dict[str, str] | None = None) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`lipstream serve` on a free port with `arguments`; stopped (SIGTERM, then waited for) at the end."""
    port = free_port()
    command = [sys.executable, "-m", "lipstream.cli", "--log-level", "WARNING", "serve", "--port", str(port),
               "--metrics-port", "0", *arguments]  # fmt: skip
    process = subprocess.Popen(command, env={**os.environ, **(env or {})})
    try:
        yield process, f"http://127.0.0.1:{port}"
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def health_is(http: aiohttp.ClientSession, url: str, status: int, timeout_s: float) -> dict:
    """GET /health until it answers `status` (its body); fails the test past `timeout_s`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        try:
            async with http.get(f"{url}/health") as response:
                if response.status == status:
                    return await response.json()
        except aiohttp.ClientConnectionError:
            pass
        await asyncio.sleep(0.2)
    pytest.fail(f"/health did not answer {status} within {timeout_s:g} s")
