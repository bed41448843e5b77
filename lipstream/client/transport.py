"""The HTTP and WebSocket plumbing to one edge: answers turned into JSON or typed errors."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from lipstream.client.errors import ApiError, Unreachable, api_error


class Transport:
    def __init__(self, base_url: str, timeout_s: float) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s))

    async def close(self) -> None:
        await self._http.close()

    def url(self, path: str) -> str:
        """`path` on this edge, or as it is when it is a URL already (a session on another edge of the fleet)."""
        return path if path.startswith(("http://", "https://", "ws://", "wss://")) else self.base_url + path

    async def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        accept: tuple[int, ...] = (),
        **kwargs: Any,
    ) -> Any:
        """Send one request; its JSON answer, or ApiError with the edge's status and words."""
        headers = dict(kwargs.pop("headers", {}))
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            async with self._http.request(method, self.url(path), headers=headers, **kwargs) as response:
                text = await response.text()
                if response.status < 400 or response.status in accept:
                    return json.loads(text) if text else {}
                raise _error(response, text)
        except aiohttp.ClientError as exc:
            raise Unreachable(f"{method} {self.url(path)}: {exc}") from exc

    def websocket(self, path: str, token: str, **kwargs: Any) -> Any:
        """A WebSocket to `path`, authorised by `token` (an async context manager)."""
        return self._http.ws_connect(self.url(path), headers={"Authorization": f"Bearer {token}"}, **kwargs)


def _error(response: aiohttp.ClientResponse, text: str) -> ApiError:
    try:
        message = str(json.loads(text).get("error", text))
    except (ValueError, AttributeError):
        message = text.strip() or response.reason or ""
    retry = response.headers.get("Retry-After")
    return api_error(response.status, message, float(retry) if retry and retry.isdigit() else None)
