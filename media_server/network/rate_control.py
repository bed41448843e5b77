"""The bitrate a session's video may use, from what its viewer reports back, and how many of its frames it sends.

The controller keeps one budget for everything the session sends: speech's audio (about 85 kbit/s
with its headers, a third of a slow link) comes out of the video's share from its first packet, and
so do the video packets sent again (NACKed): under loss, aiortc's viewer asked for as much again as
the encoder made, and answering on top of the budget kept a 600 kbit/s link's queue overflowing.

It grows only on a receiver report that shows neither a queue (the round trip QUEUE_HOLD_S over
the shortest seen) nor loss (over LOSS_HOLD), so each step is one the link has carried; a report
that shows either takes away any room above what is sent (an idle session with a budget 1.5 times
its rung, on a link its rung nearly fills, started speech over it and lost half its packets): reports
come about once a second, and a sender that grows by the clock overshoots by what it sent in
between. It starts at the start bitrate (300 kbit/s by default, as browsers do) and does not grow
before the first report: on a slow link the packets sent before any feedback fill the queue, and
the first round trips would measure that queue, not the link. Until the link first pushes back it
grows by half a report (a probing start, as TCP's slow start grows per round trip); after, by 8 %
a report back to where the link pushed back, 3 % over it (the link was full there), and 15 %
beyond twice it (the link has recovered). Never for HOLD_S after a push-back, nor beyond 1.5
times what was sent in the last second (or the start bitrate): an idle session climbs the loop's
rungs as it grows. Speech's own encoder starts at no more than STREAM_START_HEADROOM times what the
rung sent, or what the link carried within CARRIED_FOR_S (`on_stream_start`), and on a good link
reaches 1400 kbit/s three to five reports later. (Doubling per report, as slow start does, reached
the max a report sooner but overflowed 600 and 300 kbit/s links in the network bench at speech's
start, whose reports then waited in the full queue.)

The link pushes back four ways, and the budget drops at once each time:
- loss in a report (as in Google's congestion control): over 10 % lost cuts it by half that, once
  per hold (Chromium puts a report in each of its NACK packets: under loss, a dozen a second, and
  cutting at each took a 1000 kbit/s link's video to the minimum for 6 s);
- a report's round trip QUEUE_PUSH_S over the shortest: to 0.85 times what was sent in the last
  second, as a receiver would, and for a while lower still, by the share that drains that queue
  in DRAIN_S. One report is enough: they wait in the queue themselves, and waiting for a second
  let it overflow; a keyframe's passing queue that pushes back for nothing costs a second at 85 %.
  The next may push back again only once the packets sent before this one have crossed the queue
  (HOLD_S and the queue's length): a report before then measures the queue they made, and
  following it halved a 600 kbit/s link's video at speech's start. A queue shorter than at the
  report before is draining: it holds the budget, and no more;
- silence: no receiver report for SILENCE_S while the session sends is a full queue holding the
  reports back, or dropping them (as in Google's congestion control, which backs off when feedback
  stops). Estimates do not count: aiortc sends one with nearly every frame, and on a full 600 kbit/s
  link they slipped through for 5 s while every report, one a second, was dropped;
- the receiver's estimate (REMB, from browsers and aiortc: what reached it) falling, once a report
  confirms the strain (a queue over QUEUE_PUSH_S, or loss over LOSS_HOLD): a delay-based estimate
  also dips when the receiver's CPU stalls or a keyframe passes, and following those dips on a link
  with room blurred the picture for nothing. Its rises are not followed, nor is it a ceiling, nor a
  floor for the other push-backs, which go by what was sent: a receiver raises it slowly from what
  reached it (aiortc by 8 % a second; Chromium, on a 600 kbit/s link, from 100 to 300 kbit/s in
  30 s, after halving it at a 90 ms queue), and an idle session sends less than the link carries.
  Believing it at every push-back kept Chromium's video under its minimum bits per pixel for most
  of a session on that link.

Below the bitrate at which a frame still gets `min_bits_per_pixel`, the session sends every 2nd
frame, then every 3rd, each with the bits of two or three: pictures stay readable where 25 of them
a second would each be a blur. The frames keep their times, so audio and lips stay in step.
"""

from __future__ import annotations

import math
from collections import deque

from lipstream.timebase import VIDEO_FPS

HOLD_S = 1.0  # no growth, and no push-back, this long after the link pushed back, and as long again as its queue
# was then: until the packets sent before the push-back have crossed it, reports measure the queue they made
START_GROWTH = 1.5  # per report, until the link first pushes back
BACK_GROWTH = 1.08  # per report, under the budget the link last pushed back to
NEAR_FACTOR = 2.0  # "near" it: under this many times it
NEAR_GROWTH = 1.03  # per report
FAR_GROWTH = 1.15  # per report
SENT_HEADROOM = 1.5  # the budget stays under this many times what was sent in the last second
STREAM_START_HEADROOM = 1.2  # the own encoder starts at no more than this many times what the idle loop sent ...
CARRIED_FOR_S = 60.0  # ... or what a report showed the link carry, this recently
SENT_WINDOW_S = 1.0
ESTIMATE_DROP = 0.97  # an estimate under this share of the last one is a decrease (Chrome re-sends at 3 %)
SILENCE_S = 2.5  # no report for this long while sending: the queue holds it back (receivers report each second)
QUEUE_HOLD_S = 0.1  # a round trip this much over the shortest: no growth ...
QUEUE_PUSH_S = 0.15  # ... this much over it: the link pushes back
QUEUE_BACKOFF = 0.85  # ... to this share of what was sent in the last second ...
DRAIN_S = 2.0  # ... less what drains the queue seen in this long (at most DRAIN_SHARE of it)
DRAIN_SHARE = 0.5
LOSS_CUT = 0.10  # over this fraction lost, the budget is cut ...
LOSS_HOLD = 0.02  # ... over this one, it does not grow
PACKET_HEADERS = 50  # bytes: RTP, SRTP, UDP and IPv4 (a fifth of an Opus packet of speech)
VIDEO_PACKET_PAYLOAD = 1300  # bytes of a frame in one RTP packet at most (aiortc's H.264 packetiser)
AUDIO_PACKET_S = 0.02  # an audio packet's duration: while they come this often, the latest gives the audio's rate
AUDIO_SWING = 1.5  # at the max, the budget keeps this much of the audio's rate: Opus's packets vary with the speech,
# and a budget of the max plus one packet's rate would take the next, larger packet out of the video's max
MAX_FRAME_STEP = 3
STEP_BACK_MARGIN = 1.15  # fewer frames are dropped again only with this much to spare


class LastSecond:
    """Bytes sent in the last SENT_WINDOW_S."""

    def __init__(self) -> None:
        self._packets: deque[tuple[float, int]] = deque()
        self._bytes = 0

    def add(self, size: int, now: float) -> None:
        self._packets.append((now, size))
        self._bytes += size

    def kbps(self, now: float) -> float:
        while self._packets and self._packets[0][0] <= now - SENT_WINDOW_S:
            self._bytes -= self._packets.popleft()[1]
        return self._bytes * 8 / 1000 / SENT_WINDOW_S


class RateController:
    """The target bitrate (kbit/s) of one session's video, and its frame step (1: every frame, 2: every 2nd ...).

    Times are seconds on any monotonic clock; `full_rate_kbps` is the bitrate at which a frame at
    25 fps gets its minimum of bits (0: frames are never dropped).
    """

    def __init__(self, min_kbps: float, max_kbps: float, start_kbps: float, full_rate_kbps: float) -> None:
        self._min = min_kbps
        self._max = max_kbps
        self._start = start_kbps
        self._full_rate = full_rate_kbps
        self._budget = start_kbps  # video and audio
        self._target = start_kbps  # the video's share
        self._step = self._step_for(start_kbps, MAX_FRAME_STEP)
        self._estimate: float | None = None
        self._unconfirmed_drop: float | None = None  # a fallen estimate no report has confirmed yet
        self._loss: float | None = None
        self._rtt: float | None = None
        self._base_rtt = float("inf")
        self._queued_s = 0.0  # the latest round trip over the shortest
        self._pushed_back_kbps: float | None = None  # the budget the link last pushed back to
        self._no_growth_until = float("-inf")
        self._heard_at: float | None = None  # the receiver's latest report
        self._video = LastSecond()  # with the packets' headers
        self._resent = LastSecond()  # video packets sent again, as full-size ones
        self._audio = LastSecond()  # with the packets' headers
        self._audio_packet: tuple[float, float] = (float("-inf"), 0.0)  # the latest audio packet: time, its rate
        self._carried: tuple[float, float] = (0.0, float("-inf"))  # the most sent at a clean report lately, when

    @property
    def target_kbps(self) -> float:
        return self._target

    @property
    def estimate_kbps(self) -> float | None:
        """The receiver's latest estimate, if it sent one."""
        return self._estimate

    @property
    def loss(self) -> float | None:
        """The fraction lost in the receiver's latest report, if it sent one."""
        return self._loss

    @property
    def rtt_s(self) -> float | None:
        """The round trip in the receiver's latest report, if it sent one."""
        return self._rtt

    @property
    def frame_step(self) -> int:
        return self._step

    def sent_kbps(self, now: float) -> float:
        """What the video sent in the last second, with its packets' headers."""
        return self._video.kbps(now)

    def on_estimate(self, kbps: float, now: float) -> None:
        """The receiver's estimate (REMB) of what its link carries of the video."""
        previous, self._estimate = self._estimate, kbps
        if previous is not None and kbps < ESTIMATE_DROP * previous:
            self._unconfirmed_drop = kbps
        elif previous is None or kbps > previous:
            self._unconfirmed_drop = None
        self._confirm_drop(now)

    def on_loss(self, fraction: float, now: float) -> None:
        """The fraction of packets lost since the receiver's previous report."""
        self._heard_at = now
        self._loss = fraction
        if fraction > LOSS_CUT and now >= self._no_growth_until:
            self._push_back(self._budget * (1 - fraction / 2), now)
        self._confirm_drop(now)

    def on_rtt(self, seconds: float, now: float) -> None:
        """The round trip the receiver's latest report gives, after its loss: the report's verdict."""
        self._heard_at = now
        self._rtt = seconds
        self._base_rtt = min(self._base_rtt, seconds)
        previous, queued = self._queued_s, seconds - self._base_rtt
        self._queued_s = queued
        draining = queued < previous  # since the last report: what was pushed back to is under the link
        if queued > QUEUE_PUSH_S and not draining and now >= self._no_growth_until:
            self._push_back(QUEUE_BACKOFF * self._sent_kbps(now), now, drain=min(DRAIN_SHARE, queued / DRAIN_S))
        self._confirm_drop(now)
        self._grow(now)

    def on_stream_start(self, now: float) -> None:
        """The session leaves the idle loop for its own encoder (speech starts): it starts at no more than a little
        over what the loop sent, unless the link carried more lately. The budget an idle session grows to (1.5
        times its rung) is room no report has seen used, and the own encoder would fill it at once, with a
        keyframe and speech's audio on top: on a 600 kbit/s link that a 440 kbit/s rung nearly filled, that
        overflowed the queue before the next report."""
        kbps, at = self._carried
        carried = kbps if now - at <= CARRIED_FOR_S else 0.0
        self._budget = min(self._budget, max(self._start, STREAM_START_HEADROOM * self._sent_kbps(now), carried))
        self._update(now)

    def on_audio_sent(self, size: int, now: float) -> None:
        """An audio packet went out: the link carries it too."""
        self._audio.add(size + PACKET_HEADERS, now)
        self._audio_packet = (now, (size + PACKET_HEADERS) * 8 / 1000 / AUDIO_PACKET_S)
        self._update(now)

    def on_resent(self, packets: int, now: float) -> None:
        """Video packets went out again (NACKed): they cross the link too, and the encoder makes room for them."""
        self._resent.add(packets * (VIDEO_PACKET_PAYLOAD + PACKET_HEADERS), now)
        self._update(now)

    def on_sent(self, size: int, now: float) -> None:
        """A video frame of `size` bytes went out, in RTP packets of at most VIDEO_PACKET_PAYLOAD, each with its
        headers: the link carries those too (4 % more at a Mbit/s, the margin a link near full lacks)."""
        self._video.add(size + PACKET_HEADERS * math.ceil(size / VIDEO_PACKET_PAYLOAD), now)
        silent = self._heard_at is not None and now - self._heard_at > SILENCE_S
        if silent and now >= self._no_growth_until:
            self._push_back(QUEUE_BACKOFF * self._budget, now)  # (again after each HOLD_S while it lasts)
        self._update(now)

    @property
    def _strained(self) -> bool:
        """Whether the receiver's latest report shows a queue or loss."""
        return self._queued_s > QUEUE_HOLD_S or (self._loss or 0.0) > LOSS_HOLD

    @property
    def _pushing(self) -> bool:
        """Whether it shows a queue over what a keyframe makes, or loss."""
        return self._queued_s > QUEUE_PUSH_S or (self._loss or 0.0) > LOSS_HOLD

    def _sent_kbps(self, now: float) -> float:
        return self._video.kbps(now) + self._resent.kbps(now) + self._audio.kbps(now)

    def _audio_kbps(self, now: float) -> float:
        """The audio's rate: speech's full rate from its first packet on (the last second's mean would
        reach it only a second later, while the video kept the audio's share)."""
        at, kbps = self._audio_packet
        return max(self._audio.kbps(now), kbps if now - at < 2 * AUDIO_PACKET_S else 0.0)

    def _confirm_drop(self, now: float) -> None:
        if self._unconfirmed_drop is not None and self._pushing:
            self._push_back(self._unconfirmed_drop + self._audio_kbps(now), now)
            self._unconfirmed_drop = None

    def _push_back(self, budget: float, now: float, drain: float = 0.0) -> None:
        """To `budget`, what the link carries, less `drain` of it while the queue the link holds drains."""
        self._pushed_back_kbps = min(self._budget, budget)
        self._budget = self._pushed_back_kbps * (1 - drain)
        self._no_growth_until = now + HOLD_S + self._queued_s
        self._update(now)

    def _grow(self, now: float) -> None:
        if self._strained:  # the link is full at what is sent now: no room above it either
            self._budget = min(self._budget, self._sent_kbps(now))
            self._update(now)
            return
        sent, (carried, at) = self._sent_kbps(now), self._carried
        if sent >= carried or now - at > CARRIED_FOR_S:
            self._carried = (sent, now)
        if now < self._no_growth_until:
            return
        pushed_back = self._pushed_back_kbps
        if pushed_back is None:
            growth = START_GROWTH
        elif self._budget < pushed_back:
            growth = BACK_GROWTH
        else:
            growth = NEAR_GROWTH if self._budget < NEAR_FACTOR * pushed_back else FAR_GROWTH
        cap = max(self._start, SENT_HEADROOM * self._sent_kbps(now))
        if self._budget < cap:
            self._budget = min(self._budget * growth, cap, self._max + AUDIO_SWING * self._audio_kbps(now))
        self._update(now)

    def _update(self, now: float) -> None:
        self._budget = max(self._budget, self._min)
        self._target = min(self._max, max(self._min, self._budget - self._audio_kbps(now) - self._resent.kbps(now)))
        self._step = self._step_for(self._target, self._step)

    def _step_for(self, kbps: float, current: int) -> int:
        """The fewest frames dropped that leave each frame its minimum; dropping fewer than now needs a margin."""
        for step in range(1, MAX_FRAME_STEP):
            margin = STEP_BACK_MARGIN if step < current else 1.0
            if kbps * step >= self._full_rate * margin:
                return step
        return MAX_FRAME_STEP


def full_rate_kbps(min_bits_per_pixel: float, width: int, height: int) -> float:
    """The bitrate at which every frame at 25 fps gets `min_bits_per_pixel`."""
    return min_bits_per_pixel * width * height * VIDEO_FPS / 1000
