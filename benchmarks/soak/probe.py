"""What a process holds, sampled from outside: memory, threads, descriptors and sockets by kind."""

from __future__ import annotations

import socket
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psutil

MB = 2**20
SOCKET_KINDS = {
    (socket.AF_INET, socket.SOCK_STREAM): "tcp",
    (socket.AF_INET6, socket.SOCK_STREAM): "tcp",
    (socket.AF_INET, socket.SOCK_DGRAM): "udp",
    (socket.AF_INET6, socket.SOCK_DGRAM): "udp",
}
COUNTED = ("threads", "fds", "sockets")  # what must come back to the baseline exactly


class ResourceProbe:
    """Samples one process; `sample` is what the soak's JSON series hold."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)

    def sockets(self) -> dict[str, int]:
        """Open sockets by kind (tcp, udp, unix), and the TCP ones by state (tcp_LISTEN, tcp_ESTABLISHED ...)."""
        kinds: Counter[str] = Counter()
        for connection in self.process.net_connections(kind="all"):
            kind = SOCKET_KINDS.get((connection.family, connection.type), "unix")
            kinds[kind] += 1
            if kind == "tcp":
                kinds[f"tcp_{connection.status}"] += 1
        return {"total": sum(kinds[k] for k in ("tcp", "udp", "unix")), **dict(sorted(kinds.items()))}

    def thread_names(self) -> dict[str, int]:
        """Threads by the name the kernel knows (gRPC and the codecs name theirs; Python's say `python`)."""
        names: Counter[str] = Counter()
        for thread in self.process.threads():
            comm = Path(f"/proc/{self.process.pid}/task/{thread.id}/comm")
            try:
                names[comm.read_text().strip()] += 1
            except OSError:  # the thread ended between the listing and the read
                continue
        return dict(sorted(names.items()))

    def sample(self, cycle: int, sessions: int, started: float, detail: bool = False) -> dict[str, Any]:
        """One point of a series: after `cycle` cycles, with `sessions` live on the edge.

        PSS and USS come from /proc/PID/smaps (slower, so only with `detail`, for the baseline
        and the end, with the threads by name).
        """
        with self.process.oneshot():
            memory = self.process.memory_info()
            point: dict[str, Any] = {
                "cycle": cycle,
                "elapsed_s": round(time.monotonic() - started, 1),
                "sessions": sessions,
                "rss_mb": round(memory.rss / MB, 2),
                "threads": self.process.num_threads(),
                "fds": self.process.num_fds(),
            }
        point["sockets"] = self.sockets()
        if detail:
            full = self.process.memory_full_info()
            point["pss_mb"] = round(getattr(full, "pss", 0) / MB, 2) or None
            point["uss_mb"] = round(full.uss / MB, 2)
            point["thread_names"] = self.thread_names()
        return point


def counted(point: dict[str, Any], name: str) -> int:
    """threads, fds or sockets (all kinds together) of a sample."""
    value = point[name]
    return int(value["total"] if isinstance(value, dict) else value)
