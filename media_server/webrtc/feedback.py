"""The viewer's RTCP feedback on the video, to the session's link: estimates (REMB), loss, keyframe requests, NACKs.

aiortc's sender handles RTCP in its private `_handle_rtcp_packet`: it answers NACKs itself, from its
history of the packets it sent (pre-encoded ones included), and hands PLI/FIR and REMB to its own
encoder, which pre-encoded packets never pass through, so there they reach nothing; aiortc has no
public hook for any of them. So the handler is wrapped on the video's sender: the session's link sees
each packet first, then aiortc handles it as before (receiver reports kept for getStats), except that
a NACK reaches it with only the packets the link lets it send again (`network.retransmit`). Its
`_send_rtcp` is wrapped too, to note when each sender report leaves (`SenderReports`).
pyproject.toml caps aiortc at the minor release this was tested on, and
tests/unit/test_aiortc_hooks.py checks that the handler, and the sender's `_ssrc` it reads, are still there.
"""

from __future__ import annotations

import time
from collections import deque

from aiortc import RTCRtpSender
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
NTP_SHORT = 65536  # a report's delay since the last SR is in 1/65536 s
SR_HISTORY = 16  # sender reports remembered: aiortc sends one every 0.5-1.5 s


class SenderReports:
    """When the video's sender reports (SR) left, for the round trip of the receiver reports that answer them.

    aiortc stamps an SR with the time of the last RTP packet it sent, not its own: up to a frame before
    it leaves (three at a frame step of 3, 120 ms), which a round trip taken from the stamp counts as
    queue. And while a queue grows, the newer SRs wait in it: the viewer's reports keep answering an
    older one, whose round trip says nothing of the queue since. A newer SR out for longer than that
    round trip, still unanswered, has been held at least that long.
    """

    def __init__(self) -> None:
        self._sent: deque[tuple[int, float]] = deque(maxlen=SR_HISTORY)  # its stamp as a report's LSR, when it left

    def sent(self, ntp_timestamp: int, at: float) -> None:
        self._sent.append(((ntp_timestamp >> 16) & 0xFFFFFFFF, at))

    def round_trip_s(self, lsr: int, dlsr: int, now: float) -> float | None:
        """From a report block at `now` (the clock of `sent`): RFC 3550's round trip, or the age of a newer SR
        still unanswered, if longer; None before the receiver has seen an SR this sender remembers."""
        answered = [i for i, (stamp, _) in enumerate(self._sent) if stamp == lsr] if lsr else []
        if not answered:
            return None
        i = answered[-1]
        round_trip = now - self._sent[i][1] - dlsr / NTP_SHORT
        if i + 1 < len(self._sent):
            round_trip = max(round_trip, now - self._sent[i + 1][1])
        return round_trip


def observe(packet: AnyRtcpPacket, ssrc: int, link: ViewerLink, reports: SenderReports) -> AnyRtcpPacket | None:
    """What one RTCP packet about the stream `ssrc` tells the link; the packet aiortc handles then, if any."""
    if isinstance(packet, RtcpRrPacket | RtcpSrPacket):
        for report in packet.reports:
            if report.ssrc == ssrc:
                link.loss(report.fraction_lost / FRACTION_SCALE)
                rtt = reports.round_trip_s(report.lsr, report.dlsr, time.monotonic())
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
    """Let `link` see the RTCP the viewer sends about `sender`'s stream, and when `sender`'s own reports left
    (see the module docstring)."""
    handle, send = sender._handle_rtcp_packet, sender._send_rtcp
    reports = SenderReports()

    async def handle_rtcp_packet(packet: AnyRtcpPacket) -> None:
        handled = observe(packet, sender._ssrc, link, reports)
        if handled is not None:
            await handle(handled)

    async def send_rtcp(packets: list[AnyRtcpPacket]) -> None:
        for packet in packets:
            if isinstance(packet, RtcpSrPacket):
                reports.sent(packet.sender_info.ntp_timestamp, time.monotonic())
        await send(packets)

    sender._handle_rtcp_packet = handle_rtcp_packet  # type: ignore[method-assign]
    sender._send_rtcp = send_rtcp  # type: ignore[method-assign]
