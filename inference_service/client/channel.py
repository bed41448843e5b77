"""The edge's channel to its inference servers: round-robin targets, backoff, and waiting for a server."""

from __future__ import annotations

import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass

import grpc

CHANNEL_RECONNECT_MAX_S = 1.0


async def wait_until_serving(target: str, timeout_s: float) -> None:
    """Return once the server's grpc.health.v1 Watch says SERVING; TimeoutError otherwise.

    The channel retries every 0.1-0.5 s, not with gRPC's default backoff (up to minutes): a
    server that starts is seen serving at once, not seconds later (a supervisor waiting here
    would miss the server hanging in between).
    """
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    options = [("grpc.initial_reconnect_backoff_ms", 100), ("grpc.max_reconnect_backoff_ms", 500)]
    async with grpc.aio.insecure_channel(target, options=options) as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(), timeout=timeout_s, wait_for_ready=True
        )
        try:
            async for reply in watch:
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
                raise
        finally:
            watch.cancel()
    raise TimeoutError(f"inference server {target} did not become SERVING in {timeout_s:g} s")


GRPC_SCHEMES = ("dns:", "ipv4:", "ipv6:", "unix:")


def channel_target(targets: Sequence[str]) -> str:
    """A gRPC target for round-robin over `targets` (host:port strings).

    One target goes through gRPC's DNS resolver (so a name with several
    addresses is spread over), or is used as it is when it is a gRPC target
    URI already (`dns://DNS-SERVER/NAME:PORT` asks that DNS server). Several
    are resolved here into one `ipv4:` or `ipv6:` address list, which is what
    gRPC accepts for static lists.
    """
    if not targets:
        raise ValueError("no inference target given")
    if len(targets) == 1:
        return targets[0] if targets[0].startswith(GRPC_SCHEMES) else f"dns:///{targets[0]}"
    addresses: dict[int, list[str]] = {socket.AF_INET: [], socket.AF_INET6: []}
    for target in targets:
        host, _, port = target.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"inference target '{target}' is not HOST:PORT")
        host = host.strip("[]")
        infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
        for family, *_, sockaddr in infos:
            if family in addresses:
                entry = f"[{sockaddr[0]}]:{port}" if family == socket.AF_INET6 else f"{sockaddr[0]}:{port}"
                if entry not in addresses[family]:
                    addresses[family].append(entry)
                break
    if addresses[socket.AF_INET]:
        return "ipv4:" + ",".join(addresses[socket.AF_INET])
    return "ipv6:" + ",".join(addresses[socket.AF_INET6])


def open_channel(
    target: str, max_message_mb: float, backoff_initial_s: float, backoff_max_s: float
) -> grpc.aio.Channel:
    """One channel to `target` (from `channel_target`): round_robin, keepalive, a reconnect each second at most."""
    limit = int(max_message_mb * 1024 * 1024)
    return grpc.aio.insecure_channel(
        target,
        options=[
            ("grpc.lb_policy_name", "round_robin"),
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", limit),
            ("grpc.initial_reconnect_backoff_ms", int(backoff_initial_s * 1000)),
            # Reconnecting to a server that is down costs a SYN a second; a restarted one is
            # found within that second instead of after gRPC's backoff has grown to minutes.
            ("grpc.max_reconnect_backoff_ms", int(min(backoff_max_s, CHANNEL_RECONNECT_MAX_S) * 1000)),
            ("grpc.enable_retries", 1),
            # Notice a dead peer that keeps the TCP connection (no RST) while streams are open.
            ("grpc.keepalive_time_ms", 20_000),
            ("grpc.keepalive_timeout_ms", 10_000),
        ],
    )


@dataclass
class Backoff:
    initial_s: float = 0.1
    maximum_s: float = 5.0
    factor: float = 2.0
    _delay: float = 0.0
    _next_try: float = 0.0

    def ready(self) -> bool:
        return time.monotonic() >= self._next_try

    def failed(self) -> None:
        self._delay = min(self.maximum_s, self._delay * self.factor if self._delay else self.initial_s)
        self._next_try = time.monotonic() + self._delay

    def succeeded(self) -> None:
        self._delay = 0.0
        self._next_try = 0.0
