"""Bidirectional inference streams, whatever the protocol: requests queued as they arrive, results in order.

A reader task turns each request into an awaitable at once (its frame queued in arrival order);
the call yields them in that order. At most `STREAM_INFLIGHT` wait: past that the reader stops
reading, which is back-pressure for a client that sends faster than the model serves.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Generic, NamedTuple, TypeVar

Request = TypeVar("Request")
Result = TypeVar("Result")

STREAM_INFLIGHT = 64


class Started(NamedTuple, Generic[Request, Result]):
    request: Request
    result: Awaitable[Result]


async def in_order(
    requests: AsyncIterator[Request], begin: Callable[[Request, float], Awaitable[Result]]
) -> AsyncGenerator[Started[Request, Result], None]:
    """Each request with its awaitable (from `begin(request, received)`), in request order; the caller awaits it.

    Ends when the client stops sending and every result was taken; a broken request stream raises.
    """
    pending: asyncio.Queue[Started[Request, Result] | None] = asyncio.Queue(STREAM_INFLIGHT)

    async def read() -> None:
        try:
            async for request in requests:
                await pending.put(Started(request, begin(request, time.perf_counter())))
        finally:
            await pending.put(None)

    reader = asyncio.create_task(read(), name="serving-stream-reader")
    try:
        while (started := await pending.get()) is not None:
            yield started
        await reader  # surfaces a broken request stream
    finally:
        reader.cancel()
        while not pending.empty():
            if (unsent := pending.get_nowait()) is not None:
                discard(unsent.result)


def discard(awaitable: Awaitable[object]) -> None:
    """A result nobody will send: cancel its task, or close its never-started coroutine."""
    if asyncio.iscoroutine(awaitable):
        awaitable.close()
    elif isinstance(awaitable, asyncio.Future):
        awaitable.cancel()


def failed(exc: BaseException) -> asyncio.Future[Result]:
    """An awaitable that raises `exc`: a request refused before it was queued, answered in its turn."""
    future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
    future.set_exception(exc)
    return future
