"""The access log, with secrets kept out: a `token=` in a query (a WebSocket's only way) is redacted."""

from __future__ import annotations

import re

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

_TOKEN = re.compile(r"(?i)([?&]token=)[^&]*")


def redact(path_qs: str) -> str:
    return _TOKEN.sub(r"\1<redacted>", path_qs)


class RedactingAccessLogger(AbstractAccessLogger):
    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            '%s "%s %s HTTP/%d.%d" %d %d %.3fs',
            request.remote,
            request.method,
            redact(request.path_qs),
            *request.version,
            response.status,
            response.body_length,
            time,
        )
