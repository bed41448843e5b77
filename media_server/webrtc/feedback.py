"""The viewer's RTCP feedback on the video, to the session's link: estimates (REMB), loss, keyframe requests, NACKs.

aiortc's sender handles RTCP in its private `_handle_rtcp_packet`: it answers NACKs itself, from its
history of the packets it sent (pre-encoded ones included), and hands PLI/FIR and REMB to its own
encoder, which pre-encoded packets never pass through, so there they reach nothing; aiortc has no
public hook for any of them. So the handler is wrapped on the video's sender: the session's link sees
each packet first, then aiortc handles it as before (receiver reports kept for getStats), except that
a NACK reaches it with only the packets the link lets it send again (`network.retransmit`).
pyproject.toml caps aiortc at the minor release this was tested on, and
tests/unit/test_aiortc_hooks.py checks that the handler, and the sender's `_ssrc` it reads, are still there.
"""

from __future__ import annotations

from aiortc import RTCRtpSender, clock
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    AnyRtcpPacket,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSrPacket,
    unpack_remb_fci,
)

from media_server.network.link import ViewerLink

FRACTION_SCALE = 256  # a report's fraction lost is 8-bit fixed point
NTP_SHORT = 65536  # a report's last-SR time and delay are NTP's middle 32 bits: 1/65536 s


def round_trip_s(lsr: int, dlsr: int, ntp_now: int) -> float | None:
    """RFC 3550's round trip from a report block: now - the SR it answers - the receiver's delay; None
    before the receiver has seen a sender report."""
    if lsr == 0:
        return None
    return ((((ntp_now >> 16) & 0xFFFFFFFF) - lsr - dlsr) % 2**32) / NTP_SHORT


def observe(packet: AnyRtcpPacket, ssrc: int, link: ViewerLink) -> AnyRtcpPacket | None:
    """What one RTCP packet about the stream `ssrc` tells the link; the packet aiortc handles then, if any."""
    if isinstance(packet, RtcpRrPacket | RtcpSrPacket):
        for report in packet.reports:
            if report.ssrc == ssrc:
                link.loss(report.fraction_lost / FRACTION_SCALE)
                rtt = round_trip_s(report.lsr, report.dlsr, clock.current_ntp_time())
                if rtt is not None:
                    link.round_trip(rtt)
    elif isinstance(packet, RtcpPsfbPacket) and packet.fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR):
        link.keyframe_requested()
    elif isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
        try:
            bitrate, ssrcs = unpack_remb_fci(packet.fci)
        except ValueError:  # another application's message
            return packet
        if ssrc in ssrcs:
            link.estimate(bitrate)
    elif isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK and packet.media_ssrc == ssrc:
        again = link.nacked(packet.lost)
        return RtcpRtpfbPacket(packet.fmt, packet.ssrc, packet.media_ssrc, again) if again else None
    return packet


def route_feedback(sender: RTCRtpSender, link: ViewerLink) -> None:
    """Let `link` see the RTCP the viewer sends about `sender`'s stream (see the module docstring)."""
    handle = sender._handle_rtcp_packet

    async def handle_rtcp_packet(packet: AnyRtcpPacket) -> None:
        handled = observe(packet, sender._ssrc, link)
        if handled is not None:
            await handle(handled)

    sender._handle_rtcp_packet = handle_rtcp_packet  # type: ignore[method-assign]
