"""NAT traversal against a real coturn and real aiortc peers: TURN credentials that coturn accepts, the edge
relaying through it itself, every ICE socket in http.ice_port_range (and 503 when it is full), public_ip."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import aiohttp
import psutil
import pytest
from aiortc import RTCConfiguration, RTCIceServer
from aiortc.rtcconfiguration import RTCIceTransportPolicy
from edge_helpers import running_edge, wait_for
from turn_helpers import coturn

from benchmarks.kit.viewer import Viewer, ViewerError, connect_viewer

# Above the kernel's ephemeral ports (32768-60999 here), so nothing else lands in them by chance.
RANGE = (61000, 61019)


def candidates(sdp: str) -> list[list[str]]:
    """Each a=candidate line's fields: foundation, component, transport, priority, address, port, "typ", type..."""
    return [line[len("a=candidate:") :].split() for line in sdp.splitlines() if line.startswith("a=candidate:")]


def in_range(port: int | str) -> bool:
    return RANGE[0] <= int(port) <= RANGE[1]


def ice_sockets_to(server_port: int) -> list[int]:
    """Local ports of this process's UDP sockets connected to 127.0.0.1:`server_port` (TURN clients)."""
    return [
        c.laddr.port
        for c in psutil.Process().net_connections(kind="udp")
        if c.raddr and c.raddr.port == server_port and c.raddr.ip == "127.0.0.1"
    ]


async def frames(viewer: Viewer, count: int = 10) -> None:
    await wait_for(lambda: len(viewer.video_frames) >= count, 20, f"{count} video frames")


def link_params(link: str) -> tuple[str, dict[str, str]]:
    """A Link header value: its target and its parameters, unquoted."""
    target, *params = (part.strip() for part in link.split(";"))
    values = {}
    for param in params:
        name, _, value = param.partition("=")
        values[name] = value.strip('"').replace('\\"', '"')
    return target.strip("<>"), values


async def test_turn_credentials_reach_clients_coturn_accepts_them_and_the_edge_relays_through_it(
    tmp_path: Path,
) -> None:
    async with coturn(tmp_path) as server:
        turn = {"urls": [server.url], "secret": server.secret, "ttl_s": 600}
        async with (
            running_edge(http={"turn": turn, "ice_port_range": f"{RANGE[0]}-{RANGE[1]}"}) as edge,
            aiohttp.ClientSession() as http,
        ):
            viewer = await connect_viewer(http, edge.url, whep=True)
            try:
                await frames(viewer)
                # WHEP: the answer's Link headers (RFC 9725), credentials minted for this very session.
                ice = [link_params(link) for link in viewer.links if 'rel="ice-server"' in link]
                assert [target for target, _ in ice] == [server.url]
                params = ice[0][1]
                expiry, name = params["username"].split(":", 1)
                assert name == viewer.session_id and abs(int(expiry) - (time.time() + 600)) < 30
                assert params["credential-type"] == "password"

                # The edge's own peer allocated a relay on coturn with its session's credentials ...
                relays = [c for c in candidates(viewer.answer_sdp) if c[7] == "relay"]
                assert relays and all(c[4] == "127.0.0.1" for c in relays)
                assert f"{expiry}:{viewer.session_id}" in server.allocations()
                # ... from a socket in the port range, like its host candidates.
                assert ice_sockets_to(server.port) and all(map(in_range, ice_sockets_to(server.port)))
                hosts = [c for c in candidates(viewer.answer_sdp) if c[7] == "host"]
                assert hosts and all(in_range(c[5]) for c in hosts)

                # The WHEP client's copy of the credentials is a real one: coturn allocates with it.
                await server.allocate(params["username"], params["credential"])

                # /offer's clients ask GET /ice-servers first: fresh credentials, never cached.
                async with http.get(f"{edge.url}/ice-servers") as response:
                    assert response.status == 200 and response.headers["Cache-Control"] == "no-store"
                    body = await response.json()
                (offered,) = body["iceServers"]
                assert offered["urls"] == [server.url] and offered["username"].split(":", 1)[1].startswith("client-")
                await server.allocate(offered["username"], offered["credential"])
                assert offered["username"] in server.allocations()
            finally:
                await viewer.close(http)


async def test_a_relay_only_viewer_streams_through_coturn_with_the_edges_credentials(tmp_path: Path) -> None:
    """An aiortc viewer that may use nothing but TURN (iceTransportPolicy relay) gets the avatar through coturn."""
    async with coturn(tmp_path) as server:
        turn = {"urls": [server.url], "secret": server.secret}
        async with running_edge(http={"turn": turn}) as edge, aiohttp.ClientSession() as http:
            async with http.get(f"{edge.url}/ice-servers") as response:
                (offered,) = (await response.json())["iceServers"]
            relay_only = RTCConfiguration(
                [RTCIceServer(offered["urls"], offered["username"], offered["credential"])],
                iceTransportPolicy=RTCIceTransportPolicy.RELAY,
            )
            viewer = await connect_viewer(http, edge.url, ice=relay_only)
            try:
                await frames(viewer, 25)
                gatherer = viewer.pc.getTransceivers()[0].receiver.transport.transport.iceGatherer
                local = gatherer.getLocalCandidates()
                assert local and {c.type for c in local} == {"relay"}
                assert offered["username"] in server.allocations()
            finally:
                await viewer.close(http)


async def test_every_ice_socket_binds_in_the_range_and_a_full_range_is_a_503() -> None:
    """One port: the first session takes it (on each address), the second is refused and leaks nothing."""
    port = RANGE[0]
    async with running_edge(http={"ice_port_range": f"{port}-{port}"}) as edge, aiohttp.ClientSession() as http:
        first = await connect_viewer(http, edge.url)
        try:
            await frames(first)
            hosts = [c for c in candidates(first.answer_sdp) if c[7] == "host"]
            assert hosts and {c[5] for c in hosts} == {str(port)}
            with pytest.raises(ViewerError) as refused:
                await connect_viewer(http, edge.url)
            assert refused.value.status == 503 and refused.value.retry_after_s == 5
            assert f"every UDP port of http.ice_port_range {port}-{port} is in use" in str(refused.value)
            assert len(edge.edge.sessions) == 1
        finally:
            await first.close(http)
        again = await connect_viewer(http, edge.url)  # the port is free again once the session ended
        try:
            await frames(again)
        finally:
            await again.close(http)


async def test_public_ip_is_what_host_candidates_advertise_with_the_ports_actually_bound() -> None:
    """Behind a 1:1 NAT the public address maps port for port onto the machine: the answer says so.

    (The NAT itself is not emulated here: that its checks reach the sockets is the network's part.)"""
    async with (
        running_edge(http={"public_ip": "203.0.113.7", "ice_port_range": f"{RANGE[0]}-{RANGE[1]}"}) as edge,
        aiohttp.ClientSession() as http,
    ):
        viewer = await connect_viewer(http, edge.url)
        try:
            hosts = [c for c in candidates(viewer.answer_sdp) if c[7] == "host"]
            ipv4 = [c for c in hosts if ":" not in c[4]]
            assert ipv4 and {c[4] for c in ipv4} == {"203.0.113.7"}
            bound = {c.laddr.port for c in psutil.Process().net_connections(kind="udp") if in_range(c.laddr.port)}
            assert {int(c[5]) for c in ipv4} <= bound
            private = {a.address for nic in psutil.net_if_addrs().values() for a in nic if a.family == socket.AF_INET}
            addressed = [line.split()[-1] for line in viewer.answer_sdp.splitlines() if line.startswith("c=IN IP4")]
            assert addressed and not private & {*addressed, *(c[4] for c in ipv4)}
        finally:
            await viewer.close(http)


async def test_turn_credentials_need_the_api_key_where_sessions_do() -> None:
    """A TURN credential is a relay anyone could use: where opening a session needs the key, so does this."""
    turn = {"urls": ["turn:turn.example.com:3478"], "secret": "s"}
    async with running_edge(False, http={"api_key": "k", "turn": turn}) as edge, aiohttp.ClientSession() as http:
        async with http.get(f"{edge.url}/ice-servers") as response:
            assert response.status == 401
        async with http.get(f"{edge.url}/ice-servers", headers={"Authorization": "Bearer k"}) as response:
            assert response.status == 200
            assert [s["urls"] for s in (await response.json())["iceServers"]] == [turn["urls"]]
