"""The URLs bound to a session, on the edge that owns it (`http.public_url`).

Behind a load balancer that spreads new sessions over several edges, a session's later requests
must reach the edge that made it: every URL an answer gives is made from that edge's own public
base URL, so clients follow them there. Without `http.public_url` they are paths, relative to
the URL the client called (one edge, or one entry point that routes by session itself).
"""

from __future__ import annotations

from media_server.config import HttpConfig


def _base(http: HttpConfig, websocket: bool = False) -> str:
    base = http.public_url or ""
    if websocket and base.startswith("http"):
        return "ws" + base[4:]  # http -> ws, https -> wss
    return base


def whep_resource(http: HttpConfig, session_id: str) -> str:
    return f"{_base(http)}/whep/sessions/{session_id}"


def control(http: HttpConfig, session_id: str) -> str:
    return f"{_base(http)}/sessions/{session_id}"


def session_urls(http: HttpConfig, session_id: str) -> dict[str, str]:
    """Where the session is controlled: state and end, speech, say, interrupt, and its two WebSockets."""
    session = control(http, session_id)
    sockets = f"{_base(http, websocket=True)}/sessions/{session_id}"
    return {
        "session": session,
        "speech": f"{session}/speech",
        "say": f"{session}/say",
        "interrupt": f"{session}/interrupt",
        "events": f"{sockets}/events",
        "stream": f"{sockets}/stream",
    }
