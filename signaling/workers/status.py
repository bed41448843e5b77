"""What a worker tells its front: one JSON line on a pipe when it is ready, and again whenever its sessions change.

Each line carries the whole state (live sessions, sessions ever created), so a line lost or late
costs nothing once the next one arrives, and the worker never queues more than a few lines: it
writes the newest state only while the pipe is keeping up.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from typing import NamedTuple

from media_server.edge import Edge

MAX_BUFFERED_BYTES = 4096  # a front that reads nothing gets no more than this queued


class WorkerReport(NamedTuple):
    sessions: int  # live now
    created: int  # ever, by this process


async def report_sessions(edge: Edge, fd: int) -> None:
    """Runs until cancelled: the edge's sessions on pipe `fd`, at once (the worker is ready) and on every change."""
    loop = asyncio.get_running_loop()
    transport, _ = await loop.connect_write_pipe(asyncio.BaseProtocol, os.fdopen(fd, "wb", buffering=0))
    changed = edge.watch()
    try:
        while True:
            if transport.get_write_buffer_size() < MAX_BUFFERED_BYTES:
                report = WorkerReport(len(edge.sessions), edge.created)
                transport.write(json.dumps(report._asdict()).encode() + b"\n")
            await changed.wait()
            changed.clear()
    finally:
        transport.close()


async def read_reports(fd: int, on_report: Callable[[WorkerReport], None]) -> None:
    """Every report a worker writes on pipe `fd`, until it closes it (it exited)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", buffering=0)
    )
    try:
        while line := await reader.readline():
            on_report(WorkerReport(**json.loads(line)))
    finally:
        transport.close()
