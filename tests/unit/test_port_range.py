"""http.ice_port_range's hook: what aioice's gathering binds moves into the range, nothing else does."""

from __future__ import annotations

import asyncio
import socket

import pytest

from media_server.webrtc.port_range import IcePortsExhausted, PortRange, binding_in, install


def udp_free_ports(count: int) -> tuple[int, int]:
    """A run of `count` UDP ports on 127.0.0.1 that were free a moment ago, below the kernel's ephemeral ones."""
    for first in range(32000 - count, 20000, -count):
        taken = []
        try:
            for port in range(first, first + count):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                taken.append(sock)
                sock.bind(("127.0.0.1", port))
            return first, first + count - 1
        except OSError:
            continue
        finally:
            for sock in taken:
                sock.close()
    raise AssertionError("no run of free UDP ports")


async def bind(host: str = "127.0.0.1", port: int = 0) -> asyncio.DatagramTransport:
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        asyncio.DatagramProtocol, local_addr=(host, port)
    )
    return transport


def port_of(transport: asyncio.BaseTransport) -> int:
    return transport.get_extra_info("sockname")[1]


def test_ports_are_handed_out_in_turn_from_a_random_start() -> None:
    ports = PortRange(40000, 40003)
    first = list(ports.ports())
    assert sorted(first) == [40000, 40001, 40002, 40003]
    assert all(b == (a - 40000 + 1) % 4 + 40000 for a, b in zip(first, first[1:]))
    assert next(ports.ports()) == (first[-1] - 40000 + 1) % 4 + 40000  # the next search goes on from there


async def test_sockets_asking_for_any_port_bind_in_the_range_only_inside_the_scope() -> None:
    install(asyncio.get_running_loop())
    install(asyncio.get_running_loop())  # once per loop, however often it is asked
    first, last = udp_free_ports(4)
    ports = PortRange(first, last)
    opened: list[asyncio.BaseTransport] = []
    try:
        with binding_in(ports):
            opened += [await bind(), await bind()]
            fixed = udp_free_ports(1)[0]
            opened.append(await bind(port=fixed))  # a port of its own (aioice's mDNS 5353) stays its own
            assert port_of(opened[-1]) == fixed

            async def in_a_task() -> asyncio.BaseTransport:  # aioice gathers in tasks: they inherit the scope
                return await bind()

            opened.append(await asyncio.create_task(in_a_task()))
        outside = await bind()
        opened.append(outside)
        in_range = [port_of(t) for t in (opened[0], opened[1], opened[3])]
        assert all(first <= port <= last for port in in_range) and len(set(in_range)) == 3
        assert not first <= port_of(outside) <= last
    finally:
        for transport in opened:
            transport.close()


async def test_a_turn_clients_socket_binds_in_the_range_and_stays_connected_to_its_server() -> None:
    install(asyncio.get_running_loop())
    first, last = udp_free_ports(2)
    server, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
    )
    try:
        with binding_in(PortRange(first, last)):
            client, _ = await asyncio.get_running_loop().create_datagram_endpoint(
                asyncio.DatagramProtocol, remote_addr=("localhost", port_of(server))
            )
        assert first <= port_of(client) <= last
        assert client.get_extra_info("peername") == ("127.0.0.1", port_of(server))
        client.close()
    finally:
        server.close()


async def test_a_full_range_is_a_clear_error_not_a_socket_elsewhere() -> None:
    install(asyncio.get_running_loop())
    first, last = udp_free_ports(2)
    holders = [await bind(port=first), await bind(port=last)]
    try:
        with pytest.raises(IcePortsExhausted, match=f"http.ice_port_range {first}-{last} is in use"):
            with binding_in(PortRange(first, last)):
                await bind()
    finally:
        for holder in holders:
            holder.close()


async def test_a_swallowed_bind_failure_still_fails_the_gathering() -> None:
    """aioice drops a failed TURN allocation's error: leaving the scope raises it anyway."""
    install(asyncio.get_running_loop())
    first, last = udp_free_ports(1)
    holder = await bind(port=first)
    try:
        with pytest.raises(IcePortsExhausted):
            with binding_in(PortRange(first, last)):
                try:
                    await bind()
                except IcePortsExhausted:
                    pass  # as aioice's asyncio.wait over its TURN task does
    finally:
        holder.close()
