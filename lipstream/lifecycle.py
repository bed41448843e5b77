"""Graceful shutdown shared by every long-running command."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import signal
import socket
import sys

_LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6") if sys.platform == "linux" else None


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
    if _LIBC is None:
        return
    pr_set_pdeathsig = 1
    _LIBC.prctl(pr_set_pdeathsig, signal.SIGTERM)


def trim_heap() -> None:
    """Hand the allocator's free pages back to the system (glibc's malloc_trim; a no-op elsewhere).

    A session frees tens of MB of frames, encoder and codec buffers spread over the heap;
    glibc keeps such fragmented free memory mapped, so a long-running edge's RSS would
    ratchet up with every burst of sessions without ever being reused.
    """
    if _LIBC is not None and hasattr(_LIBC, "malloc_trim"):
        _LIBC.malloc_trim(0)
