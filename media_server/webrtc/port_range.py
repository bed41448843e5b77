"""`http.ice_port_range`: the UDP ports the edge's ICE agent binds, all inside one configured range.

aioice (aiortc's ICE agent) has no port option: it binds every host candidate's socket with
`loop.create_datagram_endpoint(..., local_addr=(address, 0))` and a TURN client's with
`remote_addr=` alone, so the kernel picks an ephemeral port. The narrowest hook is that one call:
`install` wraps the running loop's `create_datagram_endpoint` once, and while a peer gathers its
candidates inside `binding_in(ports)` (a context variable, so only that gathering and the tasks it
starts are affected), a socket that would get an ephemeral port is bound to a free port of the
range instead. Sockets with a port of their own (aioice's mDNS resolver on 5353, passed as `sock=`)
and every other caller of the loop are left alone. tests/unit/test_aiortc_hooks.py checks that
aioice still gathers this way (pyproject.toml caps aioice at the minor release this was tested on).

The kernel is the allocator: a port in use (by a session of this or another worker process, or
by anything else) is skipped, so N workers share one range without splitting it, each starting
its search at a random place. When no port is free the session is refused (`IcePortsExhausted`,
a 503), never started with fewer candidates than it should have.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import random
import socket
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

_DatagramEndpoint = Callable[..., Awaitable[tuple[asyncio.DatagramTransport, asyncio.DatagramProtocol]]]
_INSTALLED = "_lipstream_ice_port_range"


class IcePortsExhausted(RuntimeError):
    """Every port of `http.ice_port_range` is taken: no new session until one ends."""


class PortRange:
    """Ports first..last; each search starts after where the last one ended (a random place at first)."""

    def __init__(self, first: int, last: int) -> None:
        self.first, self.last = first, last
        self._next = random.randrange(first, last + 1)

    def __len__(self) -> int:
        return self.last - self.first + 1

    def ports(self) -> Iterator[int]:
        """Every port once, from the cursor on; the cursor follows the port last handed out."""
        size = len(self)
        start = self._next - self.first
        for step in range(size):
            port = self.first + (start + step) % size
            self._next = self.first + (start + step + 1) % size
            yield port

    def exhausted(self) -> IcePortsExhausted:
        return IcePortsExhausted(f"every UDP port of http.ice_port_range {self.first}-{self.last} is in use")


class Binding:
    """One peer's gathering in a range: whether a socket of it found no free port."""

    def __init__(self, ports: PortRange) -> None:
        self.ports = ports
        self.exhausted = False

    def check(self) -> None:
        """IcePortsExhausted if a bind found no port, even one whose error aioice swallowed (a TURN allocation)."""
        if self.exhausted:
            raise self.ports.exhausted()


_BINDING: ContextVar[Binding | None] = ContextVar("ice_port_range", default=None)


@contextmanager
def binding_in(ports: PortRange | None) -> Iterator[None]:
    """ICE sockets opened in this context (and the tasks it starts) bind inside `ports` (None: anywhere).

    Raises IcePortsExhausted on leaving when one of them found no free port.
    """
    if ports is None:
        yield
        return
    binding = Binding(ports)
    token = _BINDING.set(binding)
    try:
        yield
    finally:
        _BINDING.reset(token)
    binding.check()


def install(loop: asyncio.AbstractEventLoop) -> None:
    """Wrap `loop.create_datagram_endpoint` (once per loop) so that `binding_in` can take effect."""
    if getattr(loop, _INSTALLED, False):
        return
    original = loop.create_datagram_endpoint
    loop.create_datagram_endpoint = functools.partial(_in_range, original)  # type: ignore[method-assign]
    setattr(loop, _INSTALLED, True)


async def _in_range(original: _DatagramEndpoint, protocol_factory: Callable[[], Any], *args: Any, **kwargs: Any) -> Any:
    binding = _BINDING.get()
    local: tuple[str, int] | None = kwargs.get("local_addr")
    remote: tuple[str, int] | None = kwargs.get("remote_addr")
    if binding is None or args or kwargs.get("sock") is not None or (local or ("", 0))[1] != 0:
        return await original(protocol_factory, *args, **kwargs)  # not ICE's, or a port of its own
    if local is not None:
        host = local[0]
    elif remote is not None:  # a TURN client's socket; its server resolved once, not once per port tried
        family, *_, address = (await asyncio.get_running_loop().getaddrinfo(*remote, type=socket.SOCK_DGRAM))[0]
        kwargs["remote_addr"] = address[:2]
        host = "::" if family == socket.AF_INET6 else "0.0.0.0"
    else:
        return await original(protocol_factory, **kwargs)
    for port in binding.ports.ports():
        try:
            return await original(protocol_factory, **{**kwargs, "local_addr": (host, port)})
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
    binding.exhausted = True
    raise binding.ports.exhausted()
