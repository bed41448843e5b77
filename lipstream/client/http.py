"""The connection to one edge: its HTTP API with errors turned into `ApiError`s, and the sessions on it."""

from __future__ import annotations

from types import TracebackType
from typing import Any, NamedTuple

from lipstream.client.session import Session
from lipstream.client.transport import Transport

DEFAULT_TIMEOUT_S = 30.0


class Created(NamedTuple):
    """A session opened from an SDP offer, and the SDP answer to give back to the offering peer."""

    session: Session
    answer_sdp: str


class Lipstream:
    """An edge at `base_url`; use it as `async with`, or call `close()` when done.

    `api_key` is the edge's `http.api_key`, needed only to create sessions on an edge that sets one.
    """

    def __init__(self, base_url: str, api_key: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self._transport = Transport(base_url, timeout_s)
        self.base_url = self._transport.base_url
        self._api_key = api_key

    async def __aenter__(self) -> Lipstream:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._transport.close()

    def attach(self, session_id: str, token: str) -> Session:
        """A session someone opened (the page, a WHEP player, your own code), controlled with its token."""
        return Session(self._transport, session_id, token)

    async def create(self, offer_sdp: str, avatar: str | None = None) -> Created:
        """Open a session from a WebRTC offer (which must accept H.264 video) made by your own peer.

        Behind a load balancer, the session is controlled at the edge that answered (its `urls`).
        """
        body = {"sdp": offer_sdp, "type": "offer", "avatar": avatar}
        answer = await self._transport.request("POST", "/offer", json=body, token=self._api_key)
        url = answer.get("urls", {}).get("session")
        return Created(Session(self._transport, answer["session_id"], answer["token"], url), answer["sdp"])

    async def ice_servers(self) -> list[dict[str, Any]]:
        """The STUN/TURN servers to give your peer before it makes its offer (RTCIceServer dictionaries)."""
        return list((await self._transport.request("GET", "/ice-servers", token=self._api_key))["iceServers"])

    async def avatars(self) -> dict[str, Any]:
        return await self._transport.request("GET", "/avatars")

    async def voices(self) -> dict[str, Any]:
        """Every text-to-speech engine: whether it can speak (or why not) and its voices."""
        return await self._transport.request("GET", "/voices")

    async def health(self) -> dict[str, Any]:
        """The edge's health; a degraded edge (no inference server) answers too, with `status: degraded`."""
        return await self._transport.request("GET", "/health", accept=(200, 503))
