"""Which of the packets a viewer asks for again (NACK) are sent again: within a budget, and each not over and over.

aiortc answers a NACK by sending every packet it names again, from its history of sent packets
(pre-encoded ones included). Its own receiver, though, NACKs the whole list of packets it still
misses each time it notices a new gap, so under loss the same packets are asked for many times a
second; and a browser asks again each round trip. On a congested link, answering each request
resends far more than was lost, the queue overflows again, and the stream collapses (sound
included). So a packet is sent again at most once per `AGAIN_S`, and retransmissions take at most
`share` of the session's target bitrate (a token bucket, counted in full-size packets).
"""

from __future__ import annotations

from collections import OrderedDict

from media_server.network.rate_control import PACKET_HEADERS, VIDEO_PACKET_PAYLOAD

AGAIN_S = 0.25  # a packet asked for again within this long is not resent again
PACKET_BYTES = VIDEO_PACKET_PAYLOAD + PACKET_HEADERS  # what a retransmission is counted as: a full-size packet
BURST_S = 1.0  # the bucket holds this long's worth of budget
REMEMBERED = 1024  # sequence numbers whose last retransmission is remembered


class RetransmitLimiter:
    def __init__(self, share: float) -> None:
        self._share = share
        self._tokens = 0.0
        self._filled_at: float | None = None
        self._last_sent: OrderedDict[int, float] = OrderedDict()
        self.asked = 0  # packets the viewer asked for again
        self.resent = 0  # ... and that were sent again

    def allow(self, sequence_numbers: list[int], target_kbps: float, now: float) -> list[int]:
        """The packets of one NACK to send again, in its order."""
        self._fill(target_kbps, now)
        allowed = []
        for seq in sequence_numbers:
            self.asked += 1
            last = self._last_sent.get(seq)
            if (last is not None and now - last < AGAIN_S) or self._tokens < 1:
                continue
            self._tokens -= 1
            self._last_sent[seq] = now
            self._last_sent.move_to_end(seq)
            allowed.append(seq)
        while len(self._last_sent) > REMEMBERED:
            self._last_sent.popitem(last=False)
        self.resent += len(allowed)
        return allowed

    def _fill(self, target_kbps: float, now: float) -> None:
        per_second = self._share * target_kbps * 1000 / 8 / PACKET_BYTES
        capacity = max(1.0, per_second * BURST_S)
        elapsed = now - self._filled_at if self._filled_at is not None else BURST_S  # full at the first request
        self._tokens = min(capacity, self._tokens + per_second * elapsed)
        self._filled_at = now
