"""An edge with `inference.protocol: kserve` against a server that speaks KServe v2 only, as Triton does."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import grpc
import numpy as np
from edge_helpers import health_until, running_edge, talk
from inference_helpers import make_config

from inference_service.metrics import InferenceMetrics
from inference_service.runtime.engine import InferenceEngine
from inference_service.serving.kserve import KServeService
from protos.kserve import service_pb2_grpc

MODEL = "parametric-mouth"


@asynccontextmanager
async def kserve_only_server() -> AsyncIterator[tuple[int, InferenceMetrics]]:
    """lipstream's KServe servicer alone on a gRPC server: no lipsync.v1, no grpc.health to fall back on."""
    config = make_config(registry={"preload": [MODEL]})
    metrics = InferenceMetrics()
    engine = InferenceEngine(config, metrics)
    await engine.registry.get(MODEL)
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", 16 << 20)])
    service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(KServeService(engine, ready=lambda: True), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield port, metrics
    finally:
        await server.stop(0)
        await engine.close()


async def test_a_kserve_edge_session_talks() -> None:
    async with kserve_only_server() as (port, metrics):
        targets = {"targets": [f"127.0.0.1:{port}"], "protocol": "kserve"}
        async with running_edge(with_inference=False, inference=targets) as edge, aiohttp.ClientSession() as http:
            assert (await health_until(http, edge.url, 200))["status"] == "ok", "ServerReady is the edge's health"
            assert await edge.edge.lookahead_frames(MODEL) == 1, "the look-ahead comes from the model's config"
            motion = await talk(http, edge, seconds=2.0)
    assert motion.idle.max() < 4, "the mouth moved in silence"
    assert np.percentile(motion.speaking, 90) > 12, "speech did not move the mouth"
    served = metrics.registry.get_sample_value("lipstream_inference_frames_total", {"model": MODEL})
    frames = len(motion.speaking)
    assert served is not None and served >= 0.8 * frames, f"{served} frames over KServe for {frames} speaking"
