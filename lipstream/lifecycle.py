"""Graceful shutdown shared by every long-running command."""

from __future__ import annotations

import asyncio
import signal
import socket


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM, so services drain instead of dying mid-frame."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago, for a child service that must be told its port."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]
