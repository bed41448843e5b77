"""An asyncio client for apps that drive lipstream sessions: say, speak, stream, interrupt, follow events.

It needs only aiohttp (no numpy, PyAV, ONNX or gRPC), so a voice agent can install it next to its own
stack. Attach to a session you hold (its id and token), or create one from an SDP offer your WebRTC
stack made::

    async with Lipstream("http://127.0.0.1:8080") as api:
        session = api.attach(session_id, token)
        await session.say("Hello!")
        async for event in session.events():
            ...
"""

from lipstream.client.errors import (
    ApiError,
    BadRequest,
    Busy,
    EngineFailed,
    Forbidden,
    LipstreamError,
    NotFound,
    Unreachable,
)
from lipstream.client.http import Created, Lipstream
from lipstream.client.session import Session
from lipstream.client.stream import LiveStream

__all__ = [
    "ApiError",
    "BadRequest",
    "Busy",
    "Created",
    "EngineFailed",
    "Forbidden",
    "LiveStream",
    "Lipstream",
    "LipstreamError",
    "NotFound",
    "Session",
    "Unreachable",
]
