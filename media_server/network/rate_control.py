"""The bitrate a session's video may use, from what its viewer reports back, and how many of its frames it sends.

The link pushes back three ways, and the target drops at once each time:
- the receiver's estimate (REMB, from browsers and aiortc) falls: a receiver that sees its queue
  grow asks for 0.85 times what reaches it. Its rises are not followed, nor is it a ceiling: a
  receiver raises it slowly from what reached it (aiortc by 8 % a second from its first), and a
  session on its idle loop sends less than the link carries, so a higher estimate says nothing;
- loss in the receiver's reports (as in Google's congestion control): over 10 % of the packets
  lost cuts the target by half that fraction;
- the round trip in those reports, the sender's own look at the queue (an estimate reacts to a
  growing queue, not to one that stays full, and estimates wait in it themselves): two reports in
  a row QUEUE_PUSH_S over the shortest round trip seen take the target to 0.85 times what was sent
  in the last second, as a receiver would (two, since a keyframe makes a queue that passes, unless
  one is over QUEUE_PUSH_AT_ONCE_S: reports are sparse, and wait in the queue themselves); while
  the latest is QUEUE_HOLD_S over it, or the latest loss over 2 %, the target does not grow;
- silence: receivers report about once a second, and their reports wait in the same queue, so
  none for SILENCE_S while the session sends is a full queue too (as in Google's congestion
  control, which backs off when feedback stops).

Between such signals the target grows, as a sender must try a link to learn what it carries: after
HOLD_S, by 8 % a second while it is under 1.5 times the rate the link last pushed back to, by 15 %
a second beyond that (the link has recovered), by 50 % a second until the link first pushes back; never to
more than 1.5 times what the session sent in the last second (or the start bitrate), and not at all
before the receiver's first estimate (or FIRST_ESTIMATE_S without one, for a receiver that sends
none): on a slow link the first packets fill the queue that carries the feedback. An idle session
climbs the loop's rungs no faster than the receiver's estimate (what reached it) rises, and when
speech starts, its own encoder starts at no more than the rung was sending or the estimate says
(the speech's audio starts with it), then climbs.

Below the bitrate at which a frame still gets `min_bits_per_pixel`, the session sends every 2nd
frame, then every 3rd, each with the bits of two or three: pictures stay readable where 25 of them
a second would each be a blur. The frames keep their times, so audio and lips stay in step.
"""

from __future__ import annotations

from collections import deque

from lipstream.timebase import VIDEO_FPS

HOLD_S = 1.0  # no growth this long after the link pushed back
NEAR_FACTOR = 1.5  # "near" the rate the link last pushed back at: under this many times it
NEAR_GROWTH = 1.08  # per second
FAR_GROWTH = 1.15  # per second
START_GROWTH = 1.5  # per second, until the link first pushes back
SENT_HEADROOM = 1.5  # the target stays under this many times what was sent in the last second
FIRST_ESTIMATE_S = 5.0  # no growth before the receiver's first estimate, or this long after the first packet
SENT_WINDOW_S = 1.0
CARRIED_ROOM = 1.1  # an idle rung, or speech's start, within this many times the receiver's estimate
ESTIMATE_DROP = 0.97  # an estimate under this share of the last one is a decrease (Chrome re-sends at 3 %)
SILENCE_S = 2.5  # no feedback for this long while sending: the queue holds it back (receivers report each second)
QUEUE_HOLD_S = 0.1  # a round trip this much over the shortest: no growth ...
QUEUE_PUSH_S = 0.15  # ... this much over it: the link pushes back
QUEUE_REPORTS = 2  # ... in this many reports in a row, or in one this much over it:
QUEUE_PUSH_AT_ONCE_S = 0.4  # more than a keyframe's passing queue (encoder.BUFFER_S)
QUEUE_BACKOFF = 0.85  # ... to this share of what was sent in the last second
LOSS_CUT = 0.10  # over this fraction lost, the target is cut ...
LOSS_HOLD = 0.02  # ... over this one, it does not grow
MAX_FRAME_STEP = 3
STEP_BACK_MARGIN = 1.15  # fewer frames are dropped again only with this much to spare


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
        self._target = start_kbps
        self._step = self._step_for(start_kbps, MAX_FRAME_STEP)
        self._estimate: float | None = None
        self._loss: float | None = None
        self._rtt: float | None = None
        self._base_rtt = float("inf")
        self._queued_s = 0.0  # the latest round trip over the shortest
        self._queued_reports = 0  # reports in a row with a round trip QUEUE_PUSH_S over the shortest
        self._pushed_back_kbps: float | None = None  # where the link last pushed back
        self._no_growth_until = float("-inf")
        self._grown_at: float | None = None
        self._first_sent_at: float | None = None
        self._heard_at: float | None = None  # the receiver's latest feedback
        self._sent: deque[tuple[float, int]] = deque()  # (time, bytes) of the last second's packets
        self._sent_bytes = 0

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
        """What was sent in the last second."""
        self._forget_sent(now)
        return self._sent_bytes * 8 / 1000 / SENT_WINDOW_S

    def on_estimate(self, kbps: float, now: float) -> None:
        """The receiver's estimate (REMB)."""
        self._heard_at = now
        previous, self._estimate = self._estimate, kbps
        if previous is not None and kbps < ESTIMATE_DROP * previous:
            self._push_back(min(self._target, kbps), now)

    def on_loss(self, fraction: float, now: float) -> None:
        """The fraction of packets lost since the receiver's previous report."""
        self._heard_at = now
        self._loss = fraction
        if fraction > LOSS_CUT:
            self._push_back(self._target * (1 - fraction / 2), now)

    def on_rtt(self, seconds: float, now: float) -> None:
        """The round trip the receiver's latest report gives (see the module docstring)."""
        self._rtt = seconds
        self._base_rtt = min(self._base_rtt, seconds)
        queued = self._queued_s = seconds - self._base_rtt
        self._queued_reports = self._queued_reports + 1 if queued > QUEUE_PUSH_S else 0
        standing = self._queued_reports >= QUEUE_REPORTS or queued > QUEUE_PUSH_AT_ONCE_S
        if standing and now >= self._no_growth_until:
            self._push_back(min(self._target, QUEUE_BACKOFF * self.sent_kbps(now)), now)

    @property
    def carried_kbps(self) -> float:
        """The target, but no more than the receiver's estimate says reached it: what the idle loop's rung may
        use, and the session's own encoder when speech starts (see `own_stream_starts`)."""
        if self._estimate is None:
            return self._target
        return min(self._target, CARRIED_ROOM * self._estimate)

    def own_stream_starts(self, now: float) -> None:
        """The session leaves the shared idle loop for its own encoder, as speech (and its audio) starts: the
        encoder starts at no more than the loop's rung was sending, or the receiver saw reach it, then climbs."""
        sent = self.sent_kbps(now)
        if sent > 0:
            self._set(min(self._target, max(self.carried_kbps, sent)))

    def on_sent(self, size: int, now: float) -> None:
        """A packet of `size` bytes went out: the target may grow."""
        self._sent.append((now, size))
        self._sent_bytes += size
        self._grow(now)

    def _push_back(self, kbps: float, now: float) -> None:
        self._pushed_back_kbps = kbps
        self._no_growth_until = now + HOLD_S
        self._set(kbps)

    def _grow(self, now: float) -> None:
        if self._heard_at is not None and now - self._heard_at > SILENCE_S and now >= self._no_growth_until:
            self._push_back(QUEUE_BACKOFF * self._target, now)  # (on every packet: again after each HOLD_S)
        last, self._grown_at = self._grown_at, now
        if self._first_sent_at is None:
            self._first_sent_at = now
        waiting = self._estimate is None and now - self._first_sent_at < FIRST_ESTIMATE_S
        strained = self._queued_s > QUEUE_HOLD_S or (self._loss or 0.0) > LOSS_HOLD  # until a report says not
        if last is None or waiting or strained or now < self._no_growth_until:
            return
        pushed_back = self._pushed_back_kbps
        near = pushed_back is not None and self._target < NEAR_FACTOR * pushed_back
        growth = START_GROWTH if pushed_back is None else NEAR_GROWTH if near else FAR_GROWTH
        grown = self._target * growth ** (now - last)
        cap = max(self._start, SENT_HEADROOM * self.sent_kbps(now))
        if grown > self._target and self._target < cap:
            self._set(min(grown, cap))

    def _set(self, kbps: float) -> None:
        self._target = min(self._max, max(self._min, kbps))
        self._step = self._step_for(self._target, self._step)

    def _step_for(self, kbps: float, current: int) -> int:
        """The fewest frames dropped that leave each frame its minimum; dropping fewer than now needs a margin."""
        for step in range(1, MAX_FRAME_STEP):
            margin = STEP_BACK_MARGIN if step < current else 1.0
            if kbps * step >= self._full_rate * margin:
                return step
        return MAX_FRAME_STEP

    def _forget_sent(self, now: float) -> None:
        while self._sent and self._sent[0][0] <= now - SENT_WINDOW_S:
            self._sent_bytes -= self._sent.popleft()[1]


def full_rate_kbps(min_bits_per_pixel: float, width: int, height: int) -> float:
    """The bitrate at which every frame at 25 fps gets `min_bits_per_pixel`."""
    return min_bits_per_pixel * width * height * VIDEO_FPS / 1000
