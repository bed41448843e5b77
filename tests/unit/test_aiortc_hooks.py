"""The private aiortc hooks lipstream relies on are where it expects them (pyproject.toml caps aiortc).

The edge sees the viewer's RTCP feedback on its video before aiortc does (media_server.webrtc.feedback);
the benchmarks' viewer taps packet arrivals and sender reports (benchmarks.kit.viewer).
"""

from __future__ import annotations

import inspect

import aiortc
import pytest
from aiortc import RTCRtpReceiver, RTCRtpSender
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcrtpsender import RTCRtpSender as SenderModule
from aiortc.rtp import RTCP_PSFB_PLI, RTCP_RTPFB_NACK, RtcpPsfbPacket, RtcpRtpfbPacket

from media_server.config import VideoConfig
from media_server.network.link import ViewerLink
from media_server.webrtc.feedback import SenderReports, route_feedback


def test_the_transport_hands_rtcp_to_the_senders_handler_looked_up_on_the_instance() -> None:
    handler = RTCRtpSender._handle_rtcp_packet
    assert list(inspect.signature(handler).parameters) == ["self", "packet"], aiortc.__version__
    assert inspect.iscoroutinefunction(handler)
    # Looked up on the recipient each time: replacing it on one instance reroutes that sender's RTCP.
    assert "await recipient._handle_rtcp_packet(packet)" in inspect.getsource(RTCDtlsTransport._handle_rtcp_data)
    # The sender names its stream `_ssrc` (the RTCP router knows it by that too), and answers NACKs in that
    # handler from its own history of sent packets, which pre-encoded packets enter like any others.
    assert "self._ssrc" in inspect.getsource(SenderModule.__init__)
    assert "await self._retransmit(seq)" in inspect.getsource(SenderModule._handle_rtcp_packet)
    assert "self.__rtp_history[packet.sequence_number" in inspect.getsource(SenderModule._run_rtp)
    # Its reports go out through `_send_rtcp`, looked up on the instance too.
    assert "await self._send_rtcp(packets)" in inspect.getsource(SenderModule._run_rtcp)


async def test_routing_wraps_the_handler_of_one_sender_only() -> None:
    link = ViewerLink(VideoConfig(), 512, 512)
    handled: list[object] = []
    sender = RTCRtpSender.__new__(RTCRtpSender)  # a sender that is never started: only its handler is used
    sender._ssrc = 1234

    async def aiortc_handler(packet: object) -> None:
        handled.append(packet)

    sender._handle_rtcp_packet = aiortc_handler  # type: ignore[method-assign]
    route_feedback(sender, link)
    pli = RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=1, media_ssrc=1234)
    await sender._handle_rtcp_packet(pli)
    assert handled == [pli], "aiortc still handles the packet"
    assert link.keyframes.requests == 1
    assert RTCRtpSender._handle_rtcp_packet is not sender._handle_rtcp_packet
    # NACKs reach aiortc (which resends from its history) with what the link lets it send again.
    for lost in ([7, 8], [7, 8, 9], [7, 8, 9]):
        await sender._handle_rtcp_packet(RtcpRtpfbPacket(fmt=RTCP_RTPFB_NACK, ssrc=1, media_ssrc=1234, lost=lost))
    resent = [packet.lost for packet in handled[1:] if isinstance(packet, RtcpRtpfbPacket)]
    assert resent == [[7, 8], [9]], "each packet once, however often it is asked for within 250 ms"
    assert link.snapshot()["nacked_packets"] == 8 and link.snapshot()["retransmitted_packets"] == 3


def test_a_report_gives_the_round_trip_from_when_the_sender_report_it_answers_left() -> None:
    reports = SenderReports()
    stamp = (1000 << 32) | (1 << 31)  # NTP 1000.5 s: the last RTP packet's time, 100 ms before the SR left
    reports.sent(stamp, 50.0)
    lsr = (stamp >> 16) & 0xFFFFFFFF
    # 0.75 s after it left, of which the receiver held it 0.5 s
    assert reports.round_trip_s(lsr, 65536 // 2, 50.75) == pytest.approx(0.25, abs=1e-4)
    assert reports.round_trip_s(0, 0, 50.75) is None, "no sender report seen yet"
    assert reports.round_trip_s(lsr + 1, 0, 50.75) is None, "not one of this sender's"


def test_a_report_that_answers_an_old_sender_report_while_a_newer_one_waits_gives_at_least_its_age() -> None:
    reports = SenderReports()
    reports.sent(1 << 32, 10.0)
    reports.sent(2 << 32, 11.0)  # still on its way when the receiver reported
    lsr = ((1 << 32) >> 16) & 0xFFFFFFFF
    # The answer's own round trip is 50 ms, yet the newer SR, out for 200 ms, had not arrived: the path is slower now.
    assert reports.round_trip_s(lsr, int(1.15 * 65536), 11.2) == pytest.approx(0.2, abs=1e-4)
    assert reports.round_trip_s(lsr, int(1.95 * 65536), 12.0) == pytest.approx(1.0), "held a second at least"


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
