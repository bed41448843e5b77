"""The private aiortc hooks lipstream relies on are where it expects them (pyproject.toml caps aiortc).

The edge reroutes keyframe requests (media_server.webrtc.tracks); the benchmarks' viewer taps
packet arrivals and sender reports (benchmarks.kit.viewer).
"""

from __future__ import annotations

import inspect

import aiortc
from aiortc import RTCRtpReceiver, RTCRtpSender
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


def test_the_receiver_hands_packets_through_its_handlers() -> None:
    for name in ("_handle_rtp_packet", "_handle_rtcp_packet"):
        hook = getattr(RTCRtpReceiver, name, None)
        assert inspect.iscoroutinefunction(hook), (name, aiortc.__version__)
    assert list(inspect.signature(RTCRtpReceiver._handle_rtp_packet).parameters) == [
        "self",
        "packet",
        "arrival_time_ms",
    ]
    assert list(inspect.signature(RTCRtpReceiver._handle_rtcp_packet).parameters) == ["self", "packet"]


def test_aioice_gathers_through_the_loops_datagram_endpoint_with_port_zero() -> None:
    """http.ice_port_range (media_server.webrtc.port_range) moves exactly these binds into the range: host
    candidates ask for (address, 0), a TURN client for remote_addr alone, both via loop.create_datagram_endpoint."""
    import aioice
    import aioice.ice
    import aioice.turn

    gathering = inspect.getsource(aioice.ice.Connection.get_component_candidates)
    assert "loop.create_datagram_endpoint(" in gathering and "local_addr=(address, 0)" in gathering, aioice.__version__
    assert "asyncio.get_running_loop()" in gathering
    allocation = inspect.getsource(aioice.turn.create_turn_endpoint)
    assert "loop.create_datagram_endpoint(" in allocation and "remote_addr=server_addr" in allocation
    assert "local_addr" not in allocation
    assert "get_component_candidates" in inspect.getsource(aioice.ice.Connection.gather_candidates)
