"""Request bodies read within a limit, with a clear 413, 400 or 415 instead of a traceback."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from signaling.errors import http_error


def too_large(limit: int, size: int, what: str) -> web.HTTPException:
    message = json.dumps({"error": f"{what} over the {limit / 1024:g} kB limit"})
    return web.HTTPRequestEntityTooLarge(
        max_size=limit, actual_size=size, text=message, content_type="application/json"
    )


async def read_body(request: web.Request, limit: int, what: str) -> bytes:
    """The whole body, refused with 413 as soon as it passes `limit` bytes."""
    if request.content_length is not None and request.content_length > limit:
        raise too_large(limit, request.content_length, what)
    data = bytearray()
    while chunk := await request.content.read(limit + 1 - len(data)):
        data += chunk
        if len(data) > limit:
            raise too_large(limit, len(data), what)
    return bytes(data)


def require_type(request: web.Request, content_type: str, what: str) -> None:
    if request.content_type != content_type:
        raise http_error(web.HTTPUnsupportedMediaType, f"{what} must be Content-Type: {content_type}")


async def read_text(request: web.Request, limit: int, what: str) -> str:
    try:
        return (await read_body(request, limit, what)).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise http_error(web.HTTPBadRequest, f"{what} is not UTF-8 text") from exc


async def read_json(request: web.Request, limit: int, what: str) -> Any:
    try:
        return json.loads(await read_text(request, limit, what))
    except (json.JSONDecodeError, RecursionError) as exc:
        raise http_error(web.HTTPBadRequest, f"{what} must be JSON") from exc
