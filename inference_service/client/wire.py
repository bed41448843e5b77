"""What differs between the protocols an edge can speak to its inference fleet, and lipsync.v1's side of it.

The client and its streams (round-robin, look-ahead, failover, backoff) are the same for every
protocol; a `Wire` says how a session's frames go on a stream and how their answers come back,
always as lipsync.v1 `FrameRequest`s and `FrameResult`s on the edge's side.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

import grpc

from protos.lipsync.v1 import lipsync_pb2 as pb
from protos.lipsync.v1 import lipsync_pb2_grpc as pb_grpc


class Answer(NamedTuple):
    """A stream's answer to one frame: its id (None when the server did not say) and its result."""

    frame_id: int | None
    result: pb.FrameResult


class Wire(Protocol):
    def open(self) -> grpc.aio.StreamStreamCall:
        """A new bidirectional stream for one session."""

    def request(self, frame: pb.FrameRequest) -> Any:
        """The message that carries `frame` on the stream; ValueError for a frame the protocol cannot carry."""

    def answer(self, message: Any) -> Answer:
        """A message read from the stream, as the frame's result (its `error` set when it failed)."""

    async def ready(self, timeout_s: float) -> bool:
        """Whether a server answers ready within `timeout_s`, waiting out a reconnect in progress."""

    async def lookahead_frames(self, model_id: str, timeout_s: float) -> int | None:
        """The model's declared audio look-ahead; None when the server does not say."""


class LipSyncWire:
    """lipsync.v1: frames go as they are, one StreamInfer per session."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.stub = pb_grpc.LipSyncStub(channel)

    def open(self) -> grpc.aio.StreamStreamCall:
        return self.stub.StreamInfer(wait_for_ready=False)

    def request(self, frame: pb.FrameRequest) -> pb.FrameRequest:
        return frame

    def answer(self, message: pb.FrameResult) -> Answer:
        return Answer(message.frame_id, message)

    async def ready(self, timeout_s: float) -> bool:
        try:
            await self.stub.GetServerInfo(pb.GetServerInfoRequest(), timeout=timeout_s, wait_for_ready=True)
        except grpc.aio.AioRpcError:
            return False
        return True

    async def lookahead_frames(self, model_id: str, timeout_s: float) -> int | None:
        reply = await self.stub.ListModels(pb.ListModelsRequest(), timeout=timeout_s)
        return next((model.layout.lookahead_frames for model in reply.models if model.id == model_id), None)
