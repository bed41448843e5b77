"""CPU seconds and memory of a process and all its descendants (an edge's front and workers)."""

from __future__ import annotations

from typing import Any

import psutil

MB = 2**20


def role(process: psutil.Process, root: psutil.Process) -> str:
    """ "edge" for a lone edge, "front" for one with workers, "worker-N" for its workers."""
    if process.pid != root.pid:
        arguments = process.cmdline()
        index = arguments[arguments.index("--index") + 1] if "--index" in arguments else str(process.pid)
        return f"worker-{index}"
    return "front" if root.children() else "edge"


class TreeMeter:
    def __init__(self, pid: int, children: bool = True) -> None:
        self._root = psutil.Process(pid)
        self._children = children

    def processes(self) -> list[psutil.Process]:
        return [self._root, *(self._root.children(recursive=True) if self._children else [])]

    def cpu_seconds(self) -> float:
        """User and system CPU of every process in the tree now (one that exited takes its share with it)."""
        total = 0.0
        for process in self.processes():
            try:
                times = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        return total

    def loop_cpu_seconds(self) -> float:
        """CPU of the processes' main threads: their event loops (aiortc, the inference client, Opus),
        not the threads that composite and encode video or decode speech."""
        total = 0.0
        for process in self.processes():
            try:
                main = next(t for t in process.threads() if t.id == process.pid)
            except (psutil.NoSuchProcess, StopIteration):
                continue
            total += main.user_time + main.system_time
        return total

    def memory(self) -> dict[str, dict[str, Any]]:
        """RSS and PSS (MB) of each process, by role."""
        found: dict[str, dict[str, Any]] = {}
        for process in self.processes():
            try:
                info = process.memory_full_info()
                found[role(process, self._root)] = {
                    "pid": process.pid,
                    "rss_mb": round(info.rss / MB, 1),
                    "pss_mb": round(info.pss / MB, 1),
                }
            except psutil.NoSuchProcess:
                continue
        return found
