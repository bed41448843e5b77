"""What the edge's config says about the network, applied to each peer: ICE servers, UDP ports, public address."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

from aiortc import RTCConfiguration

from media_server.config import HttpConfig
from media_server.webrtc import port_range
from media_server.webrtc.ice_servers import IceServer, IceServers, rtc_configuration
from media_server.webrtc.public_address import advertise


class PeerNetwork:
    def __init__(self, http: HttpConfig) -> None:
        self.ice_servers = IceServers(http)
        ports = http.ice_ports
        self.ports = port_range.PortRange(*ports) if ports is not None else None
        self.public_ip = http.public_ip

    def servers(self, name: str) -> list[IceServer]:
        """The ICE servers for session (or client) `name`, TURN credentials minted for it."""
        return self.ice_servers.for_session(name)

    @staticmethod
    def configuration(servers: list[IceServer]) -> RTCConfiguration:
        return rtc_configuration(servers)

    @contextmanager
    def gathering(self) -> Iterator[None]:
        """Around a peer's gathering: its sockets bind in `http.ice_port_range` (IcePortsExhausted when full)."""
        if self.ports is not None:
            port_range.install(asyncio.get_running_loop())
        with port_range.binding_in(self.ports):
            yield

    def advertised(self, sdp: str) -> str:
        """The answer as clients should read it: host candidates on `http.public_ip` when set."""
        return advertise(sdp, self.public_ip) if self.public_ip is not None else sdp
