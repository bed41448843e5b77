"""The STUN and TURN servers a session's two ends use, with TURN credentials minted per session.

Static servers come from `http.ice_servers` as configured. With `http.turn` the edge shares a
secret with the TURN server (coturn's `use-auth-secret`, the "TURN REST API" scheme): a
credential is username `EXPIRY:NAME` (EXPIRY in Unix seconds) and password
base64(HMAC-SHA1(secret, username)), which the TURN server checks without asking anyone, and
refuses after EXPIRY. Each session gets its own, valid for `turn.ttl_s`, so a credential handed to
a browser is worth one short window, never the secret.

Clients learn them as WHEP `Link: <url>; rel="ice-server"` headers (RFC 9725's format) or as the
RTCConfiguration `GET /ice-servers` answers; the edge's own peer connection uses them too.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiortc import RTCConfiguration, RTCIceServer

from media_server.config import HttpConfig


@dataclass(frozen=True)
class IceServer:
    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = None

    def as_json(self) -> dict[str, object]:
        """As a browser's RTCIceServer dictionary."""
        server: dict[str, object] = {"urls": list(self.urls)}
        if self.username is not None:
            server["username"] = self.username
        if self.credential is not None:
            server["credential"] = self.credential
        return server

    def links(self) -> list[str]:
        """One `Link` header value per URL, as WHEP clients read them."""
        params = ""
        if self.username is not None:
            params += f"; username={_quoted(self.username)}"
        if self.credential is not None:
            params += f'; credential={_quoted(self.credential)}; credential-type="password"'
        return [f'<{url}>; rel="ice-server"{params}' for url in self.urls]


def _quoted(value: str) -> str:
    """An HTTP quoted-string (RFC 9110)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def turn_rest_credential(secret: str, name: str, expires_at: int) -> tuple[str, str]:
    """(username, password) of the TURN REST scheme: `expires_at:name`, base64(HMAC-SHA1(secret, username))."""
    username = f"{expires_at}:{name}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii")


class IceServers:
    """The servers of one edge's config; `for_session` mints the TURN credentials of one session."""

    def __init__(self, http: HttpConfig, clock: Callable[[], float] = time.time) -> None:
        self._static = [IceServer(tuple(s.urls), s.username, s.credential) for s in http.ice_servers]
        self._turn = http.turn
        self.clock = clock  # the minted credentials' time base

    def for_session(self, name: str) -> list[IceServer]:
        """Every server, TURN's credentials made for `name` (a session id) and valid for `turn.ttl_s`."""
        servers = list(self._static)
        if self._turn.urls and self._turn.secret:
            expires_at = int(self.clock()) + self._turn.ttl_s
            username, password = turn_rest_credential(self._turn.secret, name, expires_at)
            servers.append(IceServer(tuple(self._turn.urls), username, password))
        return servers


def rtc_configuration(servers: list[IceServer]) -> RTCConfiguration:
    """The edge's own peer connection's configuration (aiortc uses the first STUN and the first TURN server)."""
    return RTCConfiguration(
        iceServers=[RTCIceServer(list(s.urls), username=s.username, credential=s.credential) for s in servers]
    )
