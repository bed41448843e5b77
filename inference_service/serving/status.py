"""What the inference tier's domain errors mean as gRPC status codes: one table, at the servicer's edge."""

from __future__ import annotations

import logging
from typing import NamedTuple

import grpc

from inference_service.runtime.batcher import BatcherClosed, BatchQueueFull, FrameExpired
from inference_service.runtime.layout import LayoutError
from inference_service.runtime.registry import ModelLoadError, UnknownModelError

log = logging.getLogger(__name__)

STATUS_OF: dict[type[Exception], grpc.StatusCode] = {
    UnknownModelError: grpc.StatusCode.NOT_FOUND,
    ModelLoadError: grpc.StatusCode.FAILED_PRECONDITION,
    LayoutError: grpc.StatusCode.INVALID_ARGUMENT,
    BatchQueueFull: grpc.StatusCode.RESOURCE_EXHAUSTED,
    FrameExpired: grpc.StatusCode.DEADLINE_EXCEEDED,
    BatcherClosed: grpc.StatusCode.UNAVAILABLE,
}
STATUS_BY_NUMBER = {status.value[0]: status for status in grpc.StatusCode}


class Status(NamedTuple):
    code: grpc.StatusCode
    message: str


def status_of(exc: BaseException) -> Status:
    """The status a failed frame or call answers with; INTERNAL (logged) for the unforeseen."""
    for kind, code in STATUS_OF.items():
        if isinstance(exc, kind):
            return Status(code, str(exc))
    log.error("frame failed", exc_info=exc)
    return Status(grpc.StatusCode.INTERNAL, f"internal error: {exc}")
