"""Requests passed through to a worker over its unix socket, streamed both ways, and WebSockets bridged.

Bodies are streamed, never held whole (a speech upload may be 20 MB); the worker applies every
limit itself. Hop-by-hop headers stay behind, and the client's address travels in
`X-Forwarded-For` (the front sets it; a client's own value is dropped), so the worker's rate limits
and log see the real client.
"""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp
from aiohttp import WSMsgType, web
from multidict import CIMultiDict
from yarl import URL

FORWARDED_FOR = "X-Forwarded-For"
HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection",
        "Keep-Alive",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
        "Host",
        "Sec-WebSocket-Key",
        "Sec-WebSocket-Version",
        "Sec-WebSocket-Extensions",
        "Sec-WebSocket-Accept",
        FORWARDED_FOR,
    )
)


class WorkerGone(ConnectionError):
    """The worker did not take the request: it has exited, or is exiting."""


def _end_to_end(headers: CIMultiDict[str] | dict[str, str]) -> CIMultiDict[str]:
    return CIMultiDict((name, value) for name, value in headers.items() if name.lower() not in HOP_BY_HOP)


def _upstream(request: web.Request) -> tuple[URL, CIMultiDict[str]]:
    headers = _end_to_end(CIMultiDict(request.headers))
    headers[FORWARDED_FOR] = request.remote or ""
    return URL("http://worker" + request.raw_path, encoded=True), headers


def is_websocket(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


async def forward_http(request: web.Request, worker: aiohttp.ClientSession) -> web.StreamResponse:
    """The worker's answer to `request`, streamed back as it comes."""
    url, headers = _upstream(request)
    body = request.content if request.body_exists else None
    try:
        upstream = await worker.request(request.method, url, headers=headers, data=body, allow_redirects=False)
    except aiohttp.ClientConnectionError as exc:
        raise WorkerGone(str(exc)) from exc
    async with upstream:
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        response.headers.extend(_end_to_end(CIMultiDict(upstream.headers)))
        await response.prepare(request)
        async for chunk in upstream.content.iter_any():
            await response.write(chunk)
        await response.write_eof()
    return response


Socket = web.WebSocketResponse | aiohttp.ClientWebSocketResponse


async def _pump(source: Socket, sink: Socket) -> None:
    """Messages from `source` to `sink` until `source` closes; then `sink` is closed with the same code and reason."""
    while True:
        message = await source.receive()
        if message.type == WSMsgType.TEXT:
            await sink.send_str(message.data)
        elif message.type == WSMsgType.BINARY:
            await sink.send_bytes(message.data)
        elif message.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
            reason = message.extra if message.type == WSMsgType.CLOSE and isinstance(message.extra, str) else ""
            await sink.close(code=source.close_code or aiohttp.WSCloseCode.OK, message=reason.encode())
            return


async def forward_websocket(
    request: web.Request, worker: aiohttp.ClientSession, max_msg_size: int
) -> web.StreamResponse:
    """The client's WebSocket bridged to one the front opens to the worker.

    When the worker refuses it (no such session, no token), the same request goes through as plain
    HTTP, so the client gets the worker's own status and JSON error.
    """
    url, headers = _upstream(request)
    try:
        upstream = await worker.ws_connect(url, headers=headers, max_msg_size=max_msg_size, autoping=True)
    except aiohttp.WSServerHandshakeError:
        return await forward_http(request, worker)
    except aiohttp.ClientConnectionError as exc:
        raise WorkerGone(str(exc)) from exc
    client = web.WebSocketResponse(max_msg_size=max_msg_size, heartbeat=20)
    try:
        await client.prepare(request)
        pumps = {asyncio.ensure_future(_pump(client, upstream)), asyncio.ensure_future(_pump(upstream, client))}
        done, pending = await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        for pump in pending:
            pump.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for pump in done:
            with contextlib.suppress(aiohttp.ClientError, ConnectionError):
                pump.result()
    finally:
        await upstream.close()
        await client.close()
    return client
