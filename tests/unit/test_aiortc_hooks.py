"""The one private aiortc hook the edge relies on is where it expects it (pyproject.toml caps aiortc)."""

from __future__ import annotations

import inspect

import aiortc
from aiortc import RTCRtpSender
from aiortc.rtcrtpsender import RTCRtpSender as SenderModule

from media_server.webrtc.tracks import route_keyframe_requests


def test_the_sender_answers_pli_through_send_keyframe() -> None:
    hook = getattr(RTCRtpSender, "_send_keyframe", None)
    assert callable(hook) and list(inspect.signature(hook).parameters) == ["self"], aiortc.__version__
    # aiortc's RTCP handler is what calls it on PLI/FIR: replacing it on the instance reroutes the request.
    assert "self._send_keyframe()" in inspect.getsource(SenderModule._handle_rtcp_packet)


def test_routing_replaces_the_hook_on_one_sender_only() -> None:
    requests: list[str] = []
    sender = RTCRtpSender.__new__(RTCRtpSender)  # a sender that is never started: only its hook is used
    route_keyframe_requests(sender, lambda: requests.append("keyframe"))
    sender._send_keyframe()
    assert requests == ["keyframe"]
    assert RTCRtpSender._send_keyframe is not sender._send_keyframe
