"""`http.public_ip`: the address an edge behind a 1:1 NAT advertises in its host candidates.

A cloud VM (or a Kubernetes node with host networking) binds its private address; its public
address is forwarded to it port for port. The sockets stay where they are: only the answer a
client reads changes, each host candidate of the public address's family showing that address
with its own port (and the `c=` lines that named the private one). ICE's checks then arrive
through the NAT on the very sockets aioice gathered, so nothing else needs to know.
"""

from __future__ import annotations

import ipaddress
from ipaddress import IPv4Address, IPv6Address


def _family(address: str) -> int | None:
    try:
        return ipaddress.ip_address(address).version
    except ValueError:  # an mDNS name or a host name: not ours to rewrite
        return None


def advertise(sdp: str, public_ip: IPv4Address | IPv6Address) -> str:
    """`sdp` with every host candidate of `public_ip`'s family (and the `c=` lines naming one) on `public_ip`."""
    public = str(public_ip)
    rewritten: set[str] = set()
    lines = sdp.split("\r\n")
    for index, line in enumerate(lines):
        if not line.startswith("a=candidate:"):
            continue
        fields = line.split(" ")
        if len(fields) > 7 and fields[6] == "typ" and fields[7] == "host" and _family(fields[4]) == public_ip.version:
            rewritten.add(fields[4])
            fields[4] = public
            lines[index] = " ".join(fields)
    for index, line in enumerate(lines):
        fields = line.split(" ")
        if line.startswith("c=IN ") and len(fields) == 3 and fields[2] in rewritten:
            lines[index] = f"{fields[0]} {fields[1]} {public}"
    return "\r\n".join(lines)
