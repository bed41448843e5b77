"""A private network namespace whose loopback carries UDP at a set rate: a viewer's slow link, on one machine.

Everything of a run (inference, edges, the viewer) lives in the namespace and talks over its own
loopback, so nothing leaves it and nothing outside is slowed. Its `lo` gets 127.0.0.2 too, since
aioice never offers 127.0.0.1 as a host candidate. Only UDP is shaped (a `u32` filter on IP
protocol 17 into an `htb` class with a short `pfifo`, as a mobile link's bottleneck queue): the
media and their RTCP cross it, while HTTP and gRPC (TCP) take htb's unshaped default. `netem` is
not in these kernels; `htb`, `pfifo` and `u32` are. Making a namespace and shaping it needs root.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence

from benchmarks.e2e import BenchError

NAMESPACE_ENV = "LIPSTREAM_BENCH_NETNS"  # set in the process re-run inside the namespace: its name
VETH_ADDRESS = "10.254.0.1"  # the namespace's one address besides its loopback's
QUEUE_PACKETS = 50  # the bottleneck's queue: about 0.8 s of full-size packets at 600 kbit/s


def _run(command: Sequence[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BenchError(f"`{' '.join(command)}` failed ({done.returncode}): {done.stderr.strip()}")


def require_root(what: str) -> None:
    """BenchError, saying why, unless this process may make namespaces and has `ip` and `tc`."""
    if os.geteuid() != 0:
        raise BenchError(f"{what} needs root: it makes a network namespace and shapes its loopback (run it as root)")
    missing = [tool for tool in ("ip", "tc") if shutil.which(tool) is None]
    if missing:
        raise BenchError(f"{what} needs {' and '.join(missing)} (Debian: apt-get install iproute2)")


def create(name: str) -> None:
    """The namespace, its loopback up with 127.0.0.2 as well, and nothing shaped yet.

    Chromium gathers no ICE candidate on a machine whose only interface is the loopback, so the
    namespace also gets a pair of linked virtual interfaces with a default route: their addresses are
    its own, so what goes between them crosses the loopback (and its shaping) all the same.
    """
    _run(["ip", "netns", "add", name])
    try:
        for command in (
            ["ip", "link", "set", "lo", "up"],
            ["ip", "addr", "add", "127.0.0.2/8", "dev", "lo"],
            ["ip", "link", "add", "lsb0", "type", "veth", "peer", "name", "lsb1"],
            ["ip", "addr", "add", f"{VETH_ADDRESS}/24", "dev", "lsb0"],
            ["ip", "link", "set", "lsb0", "up"],
            ["ip", "link", "set", "lsb1", "up"],
            ["ip", "route", "add", "default", "dev", "lsb0"],
        ):
            _run(["ip", "netns", "exec", name, *command])
    except BenchError:
        delete(name)
        raise


def delete(name: str) -> None:
    subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


def run_inside(name: str, argv: Sequence[str]) -> int:
    """`python -m lipstream.cli ARGV` inside the namespace; its exit code."""
    command = ["ip", "netns", "exec", name, sys.executable, "-m", "lipstream.cli", *argv]
    return subprocess.run(command, env={**os.environ, NAMESPACE_ENV: name}, check=False).returncode


def shape(kbps: int | None, queue_packets: int = QUEUE_PACKETS) -> None:
    """From a process inside the namespace: UDP on its loopback at `kbps` (None: unlimited), TCP untouched."""
    subprocess.run(["tc", "qdisc", "del", "dev", "lo", "root"], capture_output=True, check=False)
    if kbps is None:
        return
    rate = f"{kbps}kbit"
    for command in (
        ["tc", "qdisc", "add", "dev", "lo", "root", "handle", "1:", "htb", "default", "99"],
        ["tc", "class", "add", "dev", "lo", "parent", "1:", "classid", "1:1", "htb", "rate", rate, "ceil", rate],
        ["tc", "qdisc", "add", "dev", "lo", "parent", "1:1", "handle", "10:", "pfifo", "limit", str(queue_packets)],
        ["tc", "filter", "add", "dev", "lo", "parent", "1:", "protocol", "ip", "prio", "1", "u32"]
        + ["match", "ip", "protocol", "17", "0xff", "flowid", "1:1"],
    ):
        _run(command)


def shaped_drops() -> int:
    """Packets the bottleneck's queue has dropped since it was set up (0 when nothing is shaped)."""
    done = subprocess.run(["tc", "-s", "qdisc", "show", "dev", "lo"], capture_output=True, text=True, check=False)
    in_queue = False
    for line in done.stdout.splitlines():
        if line.startswith("qdisc"):
            in_queue = line.startswith("qdisc pfifo 10:")
        elif in_queue and "dropped" in line:
            return int(line.split("dropped", 1)[1].split(",", 1)[0])
    return 0
