"""The asyncio client an edge uses to reach its inference fleet, over lipsync.v1 or KServe v2.

- One channel over one or more servers with gRPC's own `round_robin` policy
  (several host:port targets, or one DNS name that resolves to several).
- `FrameStream`: a session's stream call; `submit()` returns a future per frame, and a
  broken call fails its pending frames at once and reopens with backoff (`stream`).
- The protocol is a small `Wire` (`wire` for lipsync.v1, `kserve` for KServe v2 / Triton):
  the edge speaks lipsync.v1's `FrameRequest`/`FrameResult` to this client either way.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import Literal

import grpc

from inference_service.client.channel import Backoff, channel_target, open_channel, wait_until_serving
from inference_service.client.kserve import KServeWire
from inference_service.client.stream import FrameFailed, FrameStream, InferenceUnavailable
from inference_service.client.wire import LipSyncWire, Wire
from protos.lipsync.v1 import lipsync_pb2 as pb

__all__ = [
    "FrameFailed",
    "FrameStream",
    "InferenceClient",
    "InferenceUnavailable",
    "ProtocolName",
    "WIRES",
    "channel_target",
    "wait_until_serving",
]

ProtocolName = Literal["lipsync", "kserve"]
WIRES: dict[str, Callable[[grpc.aio.Channel], Wire]] = {"lipsync": LipSyncWire, "kserve": KServeWire}


class InferenceClient:
    def __init__(
        self,
        targets: Sequence[str],
        *,
        protocol: ProtocolName = "lipsync",
        max_message_mb: float = 16.0,
        backoff_initial_s: float = 0.1,
        backoff_max_s: float = 5.0,
    ) -> None:
        self.target = channel_target(list(targets))
        self.protocol = protocol
        self._channel = open_channel(self.target, max_message_mb, backoff_initial_s, backoff_max_s)
        self.wire = WIRES[protocol](self._channel)
        self.lipsync = LipSyncWire(self._channel).stub  # lipsync.v1's own calls: batches, models, server info
        self._backoff = (backoff_initial_s, backoff_max_s)
        self._streams: weakref.WeakSet[FrameStream] = weakref.WeakSet()

    # -- lipsync.v1 only -------------------------------------------------------------------
    async def infer(self, frames: Sequence[pb.FrameRequest], timeout_s: float) -> list[pb.FrameResult]:
        response = await self.lipsync.Infer(pb.InferRequest(frames=frames), timeout=timeout_s)
        return list(response.results)

    async def list_models(self, timeout_s: float = 2.0) -> list[pb.ModelInfo]:
        """Every model the servers offer, with its layout (crop, audio window, look-ahead)."""
        reply = await self.lipsync.ListModels(pb.ListModelsRequest(), timeout=timeout_s)
        return list(reply.models)

    async def server_info(self, timeout_s: float = 2.0, wait_for_ready: bool = False) -> pb.ServerInfo:
        return await self.lipsync.GetServerInfo(
            pb.GetServerInfoRequest(), timeout=timeout_s, wait_for_ready=wait_for_ready
        )

    # -- every protocol --------------------------------------------------------------------
    async def reachable(self, timeout_s: float = 1.0) -> bool:
        """Whether a server answers ready within `timeout_s`, waiting out a reconnect in progress."""
        return await self.wire.ready(timeout_s)

    async def lookahead_frames(self, model_id: str, timeout_s: float = 2.0) -> int | None:
        """The model's audio look-ahead as its server declares it; None when it does not."""
        return await self.wire.lookahead_frames(model_id, timeout_s)

    def open_stream(self, max_inflight: int = 8) -> FrameStream:
        initial, maximum = self._backoff
        stream = FrameStream(self.wire, max_inflight, Backoff(initial, maximum))
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
