"""A real TURN server for the tests: Debian's coturn on loopback, with a shared secret (TURN REST credentials).

It listens on 127.0.0.1 and relays from 127.0.0.1 (`--allow-loopback-peers`, as the tests' peers
are on this machine); its log, read by `allocations`, shows who was given a relay.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import shutil
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from aioice import stun, turn

START_TIMEOUT_S = 10.0
_ALLOCATED = re.compile(r"user <([^>]*)>: incoming packet ALLOCATE processed, success")


@dataclass
class Turn:
    port: int
    secret: str
    log: Path

    @property
    def url(self) -> str:
        return f"turn:127.0.0.1:{self.port}?transport=udp"

    def allocations(self) -> list[str]:
        """The usernames of every successful allocation so far, in order."""
        return _ALLOCATED.findall(self.log.read_text(errors="replace"))

    async def allocate(self, username: str, password: str) -> None:
        """A relay allocated with these credentials (and released); aioice's TransactionFailed if refused."""
        relayed, _ = await turn.create_turn_endpoint(
            asyncio.DatagramProtocol, server_addr=("127.0.0.1", self.port), username=username, password=password
        )
        relayed.close()


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _answers_stun(port: int) -> bool:
    """Whether a STUN binding request to the server gets an answer within 0.2 s."""
    loop = asyncio.get_running_loop()
    answered = loop.create_future()

    class Probe(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            if not answered.done():
                answered.set_result(True)

    transport, _ = await loop.create_datagram_endpoint(Probe, remote_addr=("127.0.0.1", port))
    try:
        transport.sendto(bytes(stun.Message(stun.Method.BINDING, stun.Class.REQUEST)))
        await asyncio.wait_for(answered, 0.2)
        return True
    except TimeoutError:
        return False
    finally:
        transport.close()


@asynccontextmanager
async def coturn(directory: Path) -> AsyncIterator[Turn]:
    """coturn serving until the block ends; its log and state files live in `directory`."""
    program = shutil.which("turnserver")
    if program is None:
        pytest.fail("coturn's turnserver is needed for the TURN tests: apt-get install coturn")
    server = Turn(free_udp_port(), secrets.token_hex(16), directory / "turnserver.log")
    arguments = [
        "-n",  # no configuration file
        "--listening-ip=127.0.0.1",
        "--relay-ip=127.0.0.1",
        f"--listening-port={server.port}",
        "--use-auth-secret",
        f"--static-auth-secret={server.secret}",
        "--realm=lipstream.test",
        "--allow-loopback-peers",
        "--no-tls",
        "--no-dtls",
        "--no-cli",
        "--verbose",
        "--log-file=stdout",
        "--simple-log",
        f"--pidfile={directory / 'turnserver.pid'}",
        f"--db={directory / 'turndb'}",
    ]
    with server.log.open("wb") as log:
        process = await asyncio.create_subprocess_exec(program, *arguments, stdout=log, stderr=log)
    try:
        deadline = asyncio.get_running_loop().time() + START_TIMEOUT_S
        while not await _answers_stun(server.port):
            if process.returncode is not None or asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"coturn did not start: {server.log.read_text(errors='replace')[-2000:]}")
        yield server
    finally:
        if process.returncode is None:
            process.terminate()
        await process.wait()
