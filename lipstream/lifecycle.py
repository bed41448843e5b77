"""Graceful shutdown shared by every long-running command."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import signal
import socket
import sys


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM, so services drain instead of dying mid-frame."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


class Shutdown:
    """SIGTERM or SIGINT asks a service to drain (`drain`); a second one to stop at once (`now`).

    Draining is what a rolling update needs: no new work, the running work finishes.
    """

    def __init__(self) -> None:
        self.drain = asyncio.Event()
        self.now = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._signalled)

    def _signalled(self) -> None:
        (self.now if self.drain.is_set() else self.drain).set()


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago, for a child service that must be told its port."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def die_with_parent() -> None:
    """In a child, before exec: the kernel sends it SIGTERM when its parent dies, so no child outlives us.

    Linux's PR_SET_PDEATHSIG; elsewhere the child is only stopped by a parent that exits cleanly.
    """
    if sys.platform != "linux":
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
