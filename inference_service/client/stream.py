"""A session's inference stream: frames in, futures out, surviving the loss of a server.

`submit()` returns a future per frame. When the call breaks (server gone), its pending frames
fail at once and the next submit reopens it, with exponential backoff between attempts, so a
session can keep streaming idle frames meanwhile. The stream is the same whatever the protocol;
its `Wire` carries the frames.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from typing import Any, NamedTuple

import grpc

from inference_service.client.channel import Backoff
from inference_service.client.wire import Wire
from protos.lipsync.v1 import lipsync_pb2 as pb

log = logging.getLogger(__name__)

STALL_TIMEOUT_S = 1.0  # a frame unanswered this long means the server hangs


class InferenceUnavailable(RuntimeError):
    """No server answered; the caller should degrade (idle frames) and try later."""


class FrameFailed(RuntimeError):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class InFlight(NamedTuple):
    """A frame sent on a stream, waiting for its result."""

    frame_id: int
    future: asyncio.Future[pb.FrameResult]
    sent: float  # time.monotonic()


class FrameStream:
    """A session's stream call (lipsync.v1 StreamInfer, KServe ModelStreamInfer) that reopens on demand after a loss.

    `submit` never waits: frames go to a writer task through a queue bounded by the frames
    in flight, so a server that stops reading (frozen, or its TCP window full) costs the
    caller failed frames, never a stalled video clock.
    """

    def __init__(self, wire: Wire, max_inflight: int, backoff: Backoff) -> None:
        self._wire = wire
        self._max_inflight = max_inflight
        self._backoff = backoff
        self._call: grpc.aio.StreamStreamCall | None = None
        self._outbox: asyncio.Queue[Any] = asyncio.Queue(max_inflight)
        self._tasks: list[asyncio.Task[None]] = []  # the current call's reader and writer
        self._pending: collections.deque[InFlight] = collections.deque()
        self._closed = False

    @property
    def connected(self) -> bool:
        return self._call is not None

    def retry_now(self) -> None:
        self._backoff.succeeded()

    def _open(self) -> grpc.aio.StreamStreamCall:
        call = self._wire.open()
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
        backoff has not elapsed, or when `max_inflight` frames are pending;
        ValueError for a frame the protocol cannot carry.
        """
        if self._closed:
            raise InferenceUnavailable("stream closed")
        message = self._wire.request(request)
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
        self._outbox.put_nowait(message)  # never full: it holds at most the frames pending
        return future

    async def _write(self, call: grpc.aio.StreamStreamCall, outbox: asyncio.Queue[Any]) -> None:
        try:
            while True:
                await call.write(await outbox.get())
        except (grpc.aio.AioRpcError, grpc.aio.UsageError, asyncio.InvalidStateError) as exc:
            self._broken(call, exc)

    async def _read(self, call: grpc.aio.StreamStreamCall) -> None:
        try:
            async for message in call:
                frame_id, result = self._wire.answer(message)
                in_flight = self._take(frame_id)
                if in_flight is None:
                    log.warning("inference result %s with no such frame pending", frame_id)
                    continue
                self._backoff.succeeded()
                future = in_flight.future
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

    def _take(self, frame_id: int | None) -> InFlight | None:
        """The pending frame an answer is for: the oldest with its id (a server may answer out of order,
        and an id may come back after an interrupt), or the oldest of all when the answer names none."""
        if frame_id is None:
            return self._pending.popleft() if self._pending else None
        for index, in_flight in enumerate(self._pending):
            if in_flight.frame_id == frame_id:
                del self._pending[index]
                return in_flight
        return None

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
