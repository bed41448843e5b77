"""asyncio client for lipsync.v1, as the edge uses it.

- One channel over one or more servers with gRPC's own `round_robin` policy
  (several host:port targets, or one DNS name that resolves to several).
- `FrameStream`: a session's StreamInfer call. `submit()` returns a future per
  frame, resolved in order. When the call breaks (server gone), its pending
  frames fail at once and the next submit reopens it, with exponential backoff
  between attempts, so a session can keep streaming idle frames meanwhile.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import socket
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import grpc

from protos.lipsync.v1 import lipsync_pb2 as pb
from protos.lipsync.v1 import lipsync_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)


STALL_TIMEOUT_S = 1.0  # a frame unanswered this long means the server hangs
CHANNEL_RECONNECT_MAX_S = 1.0


class InferenceUnavailable(RuntimeError):
    """No server answered; the caller should degrade (idle frames) and try later."""


class FrameFailed(RuntimeError):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


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


def channel_target(targets: Sequence[str]) -> str:
    """A gRPC target for round-robin over `targets` (host:port strings).

    One target goes through gRPC's DNS resolver (so a name with several
    addresses is spread over). Several are resolved here into one `ipv4:`
    or `ipv6:` address list, which is what gRPC accepts for static lists.
    """
    if not targets:
        raise ValueError("no inference target given")
    if len(targets) == 1:
        return f"dns:///{targets[0]}"
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


class InferenceClient:
    def __init__(
        self,
        targets: Sequence[str],
        *,
        max_message_mb: float = 16.0,
        backoff_initial_s: float = 0.1,
        backoff_max_s: float = 5.0,
    ) -> None:
        limit = int(max_message_mb * 1024 * 1024)
        self.target = channel_target(list(targets))
        self._channel = grpc.aio.insecure_channel(
            self.target,
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
        self.stub = pb_grpc.LipSyncStub(self._channel)
        self._backoff = (backoff_initial_s, backoff_max_s)
        self._streams: weakref.WeakSet[FrameStream] = weakref.WeakSet()

    async def infer(self, frames: Sequence[pb.FrameRequest], timeout_s: float) -> list[pb.FrameResult]:
        response = await self.stub.Infer(pb.InferRequest(frames=frames), timeout=timeout_s)
        return list(response.results)

    async def list_models(self, timeout_s: float = 2.0) -> list[pb.ModelInfo]:
        """Every model the servers offer, with its layout (crop, audio window, look-ahead)."""
        reply = await self.stub.ListModels(pb.ListModelsRequest(), timeout=timeout_s)
        return list(reply.models)

    async def server_info(self, timeout_s: float = 2.0, wait_for_ready: bool = False) -> pb.ServerInfo:
        return await self.stub.GetServerInfo(
            pb.GetServerInfoRequest(), timeout=timeout_s, wait_for_ready=wait_for_ready
        )

    async def reachable(self, timeout_s: float = 1.0) -> bool:
        """Whether a server answers within `timeout_s`, waiting out a reconnect in progress."""
        try:
            await self.server_info(timeout_s, wait_for_ready=True)
        except grpc.aio.AioRpcError:
            return False
        return True

    def open_stream(self, max_inflight: int = 8) -> FrameStream:
        initial, maximum = self._backoff
        stream = FrameStream(self.stub, max_inflight, Backoff(initial, maximum))
        self._streams.add(stream)
        return stream

    def servers_back(self) -> None:
        """A server answers again (the health check saw it): every stream may reconnect now, not after its backoff."""
        for stream in list(self._streams):
            stream.retry_now()

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> InferenceClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class InFlight(NamedTuple):
    """A frame sent on a stream, waiting for its result."""

    frame_id: int
    future: asyncio.Future[pb.FrameResult]
    sent: float  # time.monotonic()


class FrameStream:
    """A StreamInfer call that survives server loss by reopening on demand.

    `submit` never waits: frames go to a writer task through a queue bounded by the frames
    in flight, so a server that stops reading (frozen, or its TCP window full) costs the
    caller failed frames, never a stalled video clock.
    """

    def __init__(self, stub: pb_grpc.LipSyncStub, max_inflight: int, backoff: Backoff) -> None:
        self._stub = stub
        self._max_inflight = max_inflight
        self._backoff = backoff
        self._call: grpc.aio.StreamStreamCall | None = None
        self._outbox: asyncio.Queue[pb.FrameRequest] = asyncio.Queue(max_inflight)
        self._tasks: list[asyncio.Task[None]] = []  # the current call's reader and writer
        self._pending: collections.deque[InFlight] = collections.deque()
        self._closed = False

    @property
    def connected(self) -> bool:
        return self._call is not None

    def retry_now(self) -> None:
        self._backoff.succeeded()

    def _open(self) -> grpc.aio.StreamStreamCall:
        call = self._stub.StreamInfer(wait_for_ready=False)
        self._call = call
        self._outbox = asyncio.Queue(self._max_inflight)
        self._tasks = [
            asyncio.create_task(self._read(call), name="inference-stream-reader"),
            asyncio.create_task(self._write(call, self._outbox), name="inference-stream-writer"),
        ]
        return call

    def submit(self, request: pb.FrameRequest) -> asyncio.Future[pb.FrameResult]:
        """Queue one frame; the returned future gives its FrameResult or raises.

        Raises InferenceUnavailable at once while the stream is down and the
        backoff has not elapsed, or when `max_inflight` frames are pending.
        """
        if self._closed:
            raise InferenceUnavailable("stream closed")
        call = self._call
        if call is not None and self._pending and time.monotonic() - self._pending[0].sent > STALL_TIMEOUT_S:
            # Connected but silent (a hung server): give up on it, so round_robin picks another.
            self._broken(call, InferenceUnavailable(f"no answer for {STALL_TIMEOUT_S:g} s"))
            call = None
        if len(self._pending) >= self._max_inflight:
            raise InferenceUnavailable(f"{self._max_inflight} frames already in flight")
        if call is None:
            if not self._backoff.ready():
                raise InferenceUnavailable("inference reconnect backoff")
            call = self._open()
        future: asyncio.Future[pb.FrameResult] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_retrieve)
        self._pending.append(InFlight(request.frame_id, future, time.monotonic()))
        self._outbox.put_nowait(request)  # never full: it holds at most the frames pending
        return future

    async def _write(self, call: grpc.aio.StreamStreamCall, outbox: asyncio.Queue[pb.FrameRequest]) -> None:
        try:
            while True:
                await call.write(await outbox.get())
        except (grpc.aio.AioRpcError, grpc.aio.UsageError, asyncio.InvalidStateError) as exc:
            self._broken(call, exc)

    async def _read(self, call: grpc.aio.StreamStreamCall) -> None:
        try:
            async for result in call:
                if not self._pending:
                    log.warning("inference result %d with no frame pending", result.frame_id)
                    continue
                frame_id, future, _ = self._pending.popleft()
                if result.frame_id != frame_id:
                    raise RuntimeError(f"inference results out of order: got {result.frame_id}, expected {frame_id}")
                self._backoff.succeeded()
                if future.done():
                    continue
                if result.HasField("error"):
                    future.set_exception(FrameFailed(result.error.code, result.error.message))
                else:
                    future.set_result(result)
            self._broken(call, InferenceUnavailable("inference stream ended"))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure of the call means reconnect
            self._broken(call, exc)

    def _broken(self, call: grpc.aio.StreamStreamCall, exc: BaseException) -> None:
        if self._call is not call:
            return
        self._call = None
        call.cancel()
        for task in self._tasks:  # the writer may be waiting for a frame that will never come
            if task is not asyncio.current_task():
                task.cancel()
        if not self._closed:
            self._backoff.failed()
            log.warning("inference stream lost: %s", _describe(exc))
        error = InferenceUnavailable(f"inference stream lost: {_describe(exc)}")
        while self._pending:
            _, future, _ = self._pending.popleft()
            if not future.done():
                future.set_exception(error)

    async def close(self) -> None:
        self._closed = True
        if self._call is not None:
            self._broken(self._call, InferenceUnavailable("stream closed"))
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _retrieve(future: asyncio.Future[pb.FrameResult]) -> None:
    """A caller that stopped waiting (interrupt, deadline) must not leave 'never retrieved' noise."""
    if not future.cancelled():
        future.exception()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"{exc.code().name}: {exc.details()}"
    return str(exc) or type(exc).__name__
