"""The front's workers: started, counted, restarted when they die, drained on SIGTERM.

A worker is `lipstream edge-worker` in a child process that dies with the front (the kernel
signals it), reads its config on stdin, serves on a unix socket in a private directory and
reports its sessions on a pipe (`status`). Its load is the sessions it reported, plus those the
front forwarded to it and has not seen reported yet, plus those being created there right now.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from lipstream.lifecycle import die_with_parent
from media_server.config import EdgeConfig
from media_server.edge import SessionLimit
from signaling.supervision import keep_alive
from signaling.workers.status import WorkerReport, read_reports

log = logging.getLogger(__name__)

START_TIMEOUT_S = 120.0  # loading (or at the first start, decoding) the default avatar, encoding its idle loop
EXIT_GRACE_S = 10.0  # beyond the drain timeout, before a worker that does not exit is killed


class WorkerFailed(RuntimeError):
    """A worker exited, or did not report ready in time, while starting."""


@dataclass(eq=False)
class Worker:
    index: int
    socket: Path
    process: asyncio.subprocess.Process | None = None
    http: aiohttp.ClientSession | None = None  # to its socket, while it is up
    restarts: int = 0
    sessions: int = 0  # as it last reported
    created: int = 0  # as it last reported
    forwarded: int = 0  # creations the front saw succeed, this process
    creating: int = 0  # creations forwarded and not answered yet
    _reports: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def up(self) -> bool:
        return self.http is not None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def load(self) -> int:
        """Sessions this worker has or is about to have."""
        return self.sessions + max(0, self.forwarded - self.created) + self.creating

    def reported(self, report: WorkerReport) -> None:
        self.sessions, self.created = report.sessions, report.created


class WorkerPool:
    def __init__(self, config: EdgeConfig, count: int, sockets: Path) -> None:
        self.config = config
        self.workers = [Worker(index, sockets / f"worker-{index}.sock") for index in range(count)]
        self.draining = False
        self._watchers: list[asyncio.Task[None]] = []
        self._next_any = 0

    # -- starting and watching ------------------------------------------------------------------
    def _command(self, worker: Worker, status_fd: int) -> list[str]:
        level = logging.getLevelName(logging.getLogger().getEffectiveLevel())
        arguments = ["--index", str(worker.index), "--socket", str(worker.socket), "--status-fd", str(status_fd)]
        return [sys.executable, "-m", "lipstream.cli", "--log-level", level, "edge-worker", *arguments]

    async def _spawn(self, worker: Worker) -> None:
        """Start the worker's process and return once it serves; WorkerFailed if it exits or hangs first."""
        read_fd, write_fd = os.pipe()
        try:
            process = await asyncio.create_subprocess_exec(
                *self._command(worker, write_fd),
                stdin=asyncio.subprocess.PIPE,
                pass_fds=(write_fd,),
                preexec_fn=die_with_parent,
            )
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        worker.process, worker.sessions, worker.created, worker.forwarded = process, 0, 0, 0
        ready = asyncio.Event()

        def on_report(report: WorkerReport) -> None:
            worker.reported(report)
            ready.set()

        worker._reports = asyncio.create_task(read_reports(read_fd, on_report), name=f"worker-{worker.index}-reports")
        assert process.stdin is not None
        with contextlib.suppress(ConnectionError):  # it exited at once: said below
            process.stdin.write(self.config.model_dump_json().encode())
            await process.stdin.drain()
            process.stdin.close()
        exited = asyncio.ensure_future(process.wait())
        readied = asyncio.ensure_future(ready.wait())
        try:
            await asyncio.wait({exited, readied}, timeout=START_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
        finally:
            exited.cancel()
            readied.cancel()
        if not ready.is_set():
            await self._kill(worker)
            raise WorkerFailed(f"worker {worker.index} did not start (exit code {process.returncode})")
        worker.http = aiohttp.ClientSession(
            connector=aiohttp.UnixConnector(path=str(worker.socket)),
            auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=None, connect=5),
        )
        log.info("worker %d serving (pid %d)", worker.index, process.pid)

    async def start(self) -> None:
        """Every worker up, then watched; WorkerFailed if one cannot start."""
        await asyncio.gather(*(self._spawn(worker) for worker in self.workers))
        self._watchers = [asyncio.create_task(self._watch(w), name=f"worker-{w.index}") for w in self.workers]

    async def _down(self, worker: Worker) -> None:
        """The worker's process has exited: nothing goes to it any more."""
        http, worker.http = worker.http, None
        worker.sessions = 0
        if http is not None:
            await http.close()
        if worker._reports is not None:
            await asyncio.gather(worker._reports, return_exceptions=True)

    async def _watch(self, worker: Worker) -> None:
        """Runs until cancelled or drained: restart the worker whenever it exits."""

        async def down() -> str | None:
            assert worker.process is not None
            code = await worker.process.wait()
            await self._down(worker)
            return None if self.draining else f"{worker.index} exited (code {code}), its sessions with it"

        def restarted() -> None:
            worker.restarts += 1

        await keep_alive("worker", down, lambda: self._spawn(worker), WorkerFailed, restarted)

    # -- choosing a worker --------------------------------------------------------------------------
    @property
    def sessions(self) -> int:
        return sum(worker.load for worker in self.workers)

    def for_new_session(self) -> Worker:
        """The least-loaded worker that is up; SessionLimit when the machine is full, draining or has none up."""
        if self.draining:
            raise SessionLimit("draining: this edge is shutting down")
        limit = self.config.sessions.max_sessions
        if self.sessions >= limit:
            raise SessionLimit(f"server full: {limit} sessions")
        up = [worker for worker in self.workers if worker.up]
        if not up:
            raise SessionLimit("no edge worker is up")
        return min(up, key=lambda worker: (worker.load, worker.index))

    def owner(self, index: int | None) -> Worker | None:
        """Worker `index` if it is up."""
        if index is None or not 0 <= index < len(self.workers):
            return None
        worker = self.workers[index]
        return worker if worker.up else None

    def any(self) -> Worker | None:
        """Any worker that is up, in turn."""
        for step in range(len(self.workers)):
            worker = self.workers[(self._next_any + step) % len(self.workers)]
            if worker.up:
                self._next_any = worker.index + 1
                return worker
        return None

    # -- ending ---------------------------------------------------------------------------------
    def _signal(self, signum: int) -> None:
        for worker in self.workers:
            if worker.process is not None and worker.process.returncode is None:
                worker.process.send_signal(signum)

    async def drain(self, now: asyncio.Event) -> None:
        """SIGTERM to every worker (they drain); a second to all when `now` is set; kill what outlives the drain."""
        self.draining = True
        self._signal(signal.SIGTERM)
        processes = [w.process.wait() for w in self.workers if w.process is not None]
        exited: asyncio.Future[Any] = asyncio.ensure_future(asyncio.gather(*processes))
        hurry: asyncio.Future[Any] = asyncio.ensure_future(now.wait())
        timeout = self.config.sessions.drain_timeout_s + EXIT_GRACE_S
        try:
            await asyncio.wait({exited, hurry}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if hurry.done() and not exited.done():
                self._signal(signal.SIGTERM)  # their second signal: stop now
                await asyncio.wait({exited}, timeout=EXIT_GRACE_S)
        finally:
            hurry.cancel()
            exited.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await exited

    async def _kill(self, worker: Worker) -> None:
        process = worker.process
        if process is not None and process.returncode is None:
            process.kill()
            await process.wait()

    async def close(self) -> None:
        """Every worker gone (killed if it has not exited yet) and every watcher stopped."""
        self.draining = True
        for watcher in self._watchers:
            watcher.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)
        for worker in self.workers:
            await self._kill(worker)
            await self._down(worker)
