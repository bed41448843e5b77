"""The inference tier's gRPC server: lipsync.v1 and KServe v2 on one port, grpc.health.v1, reflection, metrics."""

from __future__ import annotations

import logging
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server

from inference_service.config import InferenceConfig
from inference_service.metrics import InferenceMetrics
from inference_service.serving.kserve import KServeService
from inference_service.serving.service import LipSyncService
from lipstream.lifecycle import stop_on_signals
from protos import kserve
from protos.lipsync.v1 import lipsync_pb2 as pb
from protos.lipsync.v1 import lipsync_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["LipSync"].full_name
SERVICES = (SERVICE_NAME, kserve.SERVICE_NAME)
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class InferenceServer:
    """One running inference service; `port` is known after `start()` (port 0 picks a free one)."""

    def __init__(self, config: InferenceConfig, service: LipSyncService | None = None) -> None:
        self.config = config
        self.metrics = InferenceMetrics()
        self.service = service or LipSyncService(config, self.metrics)
        self.kserve = KServeService(self.service.engine, ready=lambda: self.serving)
        self.serving = False  # what health says: a preloaded model could be loaded, and not stopping
        self.health = health.aio.HealthServicer()
        limit = int(config.server.max_message_mb * 1024 * 1024)
        self._server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", limit),
                ("grpc.http2.min_recv_ping_interval_without_data_ms", 10_000),  # clients' keepalive
            ]
        )
        pb_grpc.add_LipSyncServicer_to_server(self.service, self._server)
        kserve.service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(self.kserve, self._server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        reflection.enable_server_reflection(
            (*SERVICES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
            self._server,
        )
        self.port = 0
        self.metrics_port = 0
        self._metrics_http: Any = None

    async def _set_health(self, status: int) -> None:
        self.serving = status == SERVING
        for name in ("", *SERVICES):
            await self.health.set(name, status)

    async def start(self) -> None:
        await self._set_health(NOT_SERVING)
        server = self.config.server
        try:
            self.port = self._server.add_insecure_port(f"{server.host}:{server.port}")
        except RuntimeError as exc:  # grpc's way of saying the address is taken or invalid
            raise OSError(f"cannot listen on {server.host}:{server.port} (in use?)") from exc
        await self._server.start()
        if server.metrics_port is not None:
            self._metrics_http, _ = start_http_server(
                server.metrics_port, addr=server.metrics_host, registry=self.metrics.registry
            )
            self.metrics_port = self._metrics_http.server_port
        log.info("inference service on port %d (metrics on %d)", self.port, self.metrics_port)
        await self._preload()

    async def _preload(self) -> None:
        failures = 0
        for model_id in self.config.registry.preload:
            try:
                await self.service.registry.get(model_id)
            except Exception as exc:  # noqa: BLE001 - one broken model must not stop the others
                failures += 1
                log.error("preloading %s failed: %s", model_id, exc)
        can_serve = failures == 0 or failures < len(self.config.registry.preload)
        await self._set_health(SERVING if can_serve else NOT_SERVING)
        if not can_serve:
            log.error("no preloaded model could be loaded: health is NOT_SERVING")

    async def stop(self) -> None:
        await self._set_health(NOT_SERVING)
        await self._server.stop(self.config.server.grace_s)
        await self.service.close()
        if self._metrics_http is not None:
            self._metrics_http.shutdown()
            self._metrics_http.server_close()

    async def wait(self) -> None:
        await self._server.wait_for_termination()

    async def __aenter__(self) -> InferenceServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def serve_until_signalled(config: InferenceConfig) -> None:
    server = InferenceServer(config)
    await server.start()
    await stop_on_signals().wait()
    log.info("shutting down")
    await server.stop()
