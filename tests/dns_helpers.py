"""A tiny DNS server for the tests: every name has the addresses it is given (A and AAAA records).

gRPC asks it when a target names it (`dns://127.0.0.1:PORT/NAME:PORT`), so a test can have a name with
several addresses, as a Kubernetes headless Service has, without touching the machine's resolver.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

A, AAAA, TTL_S = 1, 28, 1


class _Answers(asyncio.DatagramProtocol):
    def __init__(self, addresses: list[str], asked: list[str]) -> None:
        self.addresses, self.asked = addresses, asked
        self.transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        ident, end = data[:2], 12
        while data[end]:  # the question's name, label by label
            end += data[end] + 1
        qtype = struct.unpack("!H", data[end + 1 : end + 3])[0]
        self.asked.append(".".join(p.decode() for p in _labels(data[12 : end + 1])))
        family = {A: socket.AF_INET, AAAA: socket.AF_INET6}.get(qtype)
        records = [
            struct.pack("!HHHIH", 0xC00C, qtype, 1, TTL_S, len(packed)) + packed  # name: a pointer to the question
            for packed in (socket.inet_pton(family, a) for a in self.addresses if family and _family(a) == family)
        ]
        header = ident + struct.pack("!HHHHH", 0x8180, 1, len(records), 0, 0)
        self.transport.sendto(header + data[12 : end + 5] + b"".join(records), addr)


def _labels(name: bytes) -> list[bytes]:
    labels, at = [], 0
    while name[at]:
        labels.append(name[at + 1 : at + 1 + name[at]])
        at += name[at] + 1
    return labels


def _family(address: str) -> int:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


@asynccontextmanager
async def dns_server(addresses: list[str]) -> AsyncIterator[tuple[int, list[str]]]:
    """(its UDP port on 127.0.0.1, the names asked so far) while it answers every name with `addresses`."""
    asked: list[str] = []
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: _Answers(addresses, asked), local_addr=("127.0.0.1", 0)
    )
    try:
        yield transport.get_extra_info("sockname")[1], asked
    finally:
        transport.close()
