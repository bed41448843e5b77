"""The rate controller driven by synthetic receiver feedback (estimates, loss, round trips) over a synthetic clock;
the keyframe pacer under a storm of requests; the retransmission limiter under aiortc's repeated NACKs."""

from __future__ import annotations

import pytest

from media_server.network.keyframes import KeyframePacer
from media_server.network.rate_control import (
    FIRST_ESTIMATE_S,
    HOLD_S,
    QUEUE_BACKOFF,
    RateController,
    full_rate_kbps,
)
from media_server.network.retransmit import AGAIN_S, PACKET_BYTES, RetransmitLimiter

FRAME_S = 0.04
FULL_RATE = full_rate_kbps(0.03, 512, 512)  # 197 kbit/s: a 512x512 frame's minimum at 25 fps


class Sender:
    """A session sending one frame every 40 ms at the controller's target (or at `app_kbps`, when it has less),
    and its receiver reporting `loss` once a second (unless `reports` is off)."""

    def __init__(self, controller: RateController) -> None:
        self.controller = controller
        self.now = 0.0
        self.frames = 0
        self.loss = 0.0
        self.reports = True
        self.targets: list[float] = []

    def run(self, seconds: float, app_kbps: float | None = None) -> None:
        for _ in range(round(seconds / FRAME_S)):
            self.now += FRAME_S
            self.frames += 1
            if self.reports and self.frames % 25 == 0:
                self.controller.on_loss(self.loss, self.now)
            kbps = self.controller.target_kbps if app_kbps is None else min(app_kbps, self.controller.target_kbps)
            self.controller.on_sent(round(kbps * 1000 / 8 * FRAME_S), self.now)
            self.targets.append(self.controller.target_kbps)


def controller() -> RateController:
    return RateController(100, 1500, 300, FULL_RATE)


def climbed() -> Sender:
    """At the max, the receiver's estimate caught up with it."""
    sender = Sender(controller())
    sender.run(0.5)
    sender.controller.on_estimate(250, sender.now)  # the first: what reached it
    sender.run(6)
    sender.controller.on_estimate(1600, sender.now)  # a rise: followed by nothing
    assert sender.controller.target_kbps == 1500
    return sender


def test_it_holds_the_start_bitrate_until_the_first_estimate_then_climbs_to_the_max() -> None:
    sender = Sender(controller())
    assert sender.controller.target_kbps == 300 and sender.controller.frame_step == 1
    sender.run(2)
    assert set(sender.targets) == {300}, "no growth before the receiver says anything"
    sender.controller.on_estimate(290, sender.now)  # what reached it: no push-back
    assert sender.controller.target_kbps == 300
    sender.run(5)
    targets = sender.targets[round(2 / FRAME_S) :]
    assert all(b >= a for a, b in zip(targets, targets[1:], strict=False)), "it never falls by itself"
    assert targets[round(1 / FRAME_S)] < 500, "it climbs, it does not jump"
    assert targets[-1] == 1500, "... to the max within a few seconds: the estimate is no ceiling"


def test_a_receiver_that_sends_no_estimate_still_gets_growth_after_a_while() -> None:
    sender = Sender(controller())
    sender.run(FIRST_ESTIMATE_S - 0.2)
    assert sender.controller.target_kbps == 300
    sender.run(5)
    assert sender.controller.target_kbps == 1500


def test_a_falling_estimate_takes_the_target_down_at_once_and_it_probes_back_up_when_the_link_recovers() -> None:
    sender = climbed()
    controller = sender.controller
    controller.on_estimate(500, sender.now)  # the receiver saw its queue grow
    assert controller.target_kbps == 500 and controller.estimate_kbps == 500
    sender.run(HOLD_S - 0.1)
    assert controller.target_kbps == 500, "no growth right after the link pushed back"
    sender.run(2)
    assert 500 < controller.target_kbps <= 500 * 1.08**2.1, "slowly near where it pushed back"
    sender.run(20)  # no more push-back: the link has recovered
    assert controller.target_kbps == 1500


def test_an_estimate_that_drops_a_little_at_a_time_takes_it_down_each_time() -> None:
    sender = climbed()
    controller = sender.controller
    for estimate in (1400, 1200, 1000, 800):
        controller.on_estimate(estimate, sender.now)
        assert controller.target_kbps == estimate
        sender.run(0.3)


def test_an_idle_session_that_sends_less_than_its_target_keeps_its_target_near_what_it_sends() -> None:
    """An idle session sends a rung of its loop (250 kbit/s): its target stays within 1.5 times that; its rung,
    and its own encoder when speech starts, stay within what the receiver saw reach it (or the rung sent)."""
    sender = Sender(RateController(100, 1500, 300, FULL_RATE))
    sender.controller.on_estimate(250, 0.0)
    for estimate in (260, 270, 280, 290):
        sender.run(1, app_kbps=250)
        sender.controller.on_estimate(estimate, sender.now)
    assert sender.controller.target_kbps == pytest.approx(1.5 * 250, rel=0.05)
    assert sender.controller.carried_kbps == pytest.approx(1.1 * 290)
    sender.controller.own_stream_starts(sender.now)
    assert sender.controller.target_kbps == pytest.approx(1.1 * 290)


def test_loss_over_ten_percent_cuts_the_target_and_some_loss_stops_its_growth_until_a_report_says_not() -> None:
    sender = climbed()
    controller = sender.controller
    controller.on_estimate(600, sender.now)
    sender.run(HOLD_S + 0.5)
    before = controller.target_kbps
    controller.on_loss(0.2, sender.now)
    assert controller.target_kbps == pytest.approx(before * 0.9) and controller.loss == 0.2
    sender.run(HOLD_S + 0.5)
    held = controller.target_kbps
    sender.loss = 0.05
    controller.on_loss(sender.loss, sender.now)
    sender.run(3)
    assert controller.target_kbps == held, "2-10 % lost: it holds, however long"
    sender.loss = 0.0
    controller.on_loss(0.0, sender.now)
    sender.run(1)
    assert controller.target_kbps > held


def test_a_standing_queue_in_the_round_trip_pushes_back_a_passing_one_does_not() -> None:
    sender = climbed()
    controller = sender.controller
    controller.on_rtt(0.02, sender.now)  # the shortest: 20 ms
    controller.on_rtt(0.22, sender.now)  # a keyframe's queue, once
    sender.run(0.5)
    controller.on_rtt(0.03, sender.now)
    assert controller.target_kbps == 1500 and controller.rtt_s == 0.03
    controller.on_rtt(0.25, sender.now)
    sender.run(1)
    assert controller.target_kbps == 1500, "one report: no growth (at the max anyway), no push-back"
    sent = controller.sent_kbps(sender.now)
    controller.on_rtt(0.3, sender.now)  # the second in a row
    assert controller.target_kbps == pytest.approx(QUEUE_BACKOFF * sent, rel=0.01)


def test_a_long_queue_in_one_report_pushes_back_at_once_and_a_short_one_stops_the_growth() -> None:
    sender = climbed()
    controller = sender.controller
    controller.on_rtt(0.01, sender.now)
    controller.on_estimate(400, sender.now)
    sender.run(HOLD_S + 0.1)
    controller.on_rtt(0.13, sender.now)  # 120 ms over the shortest: the queue grows
    held = controller.target_kbps
    sender.run(3)
    assert controller.target_kbps == held, "no growth while the latest report shows a queue"
    sent = controller.sent_kbps(sender.now)
    controller.on_rtt(0.6, sender.now)
    assert controller.target_kbps == pytest.approx(QUEUE_BACKOFF * sent, rel=0.01)


def test_no_feedback_while_sending_is_a_full_queue_holding_it_back() -> None:
    sender = climbed()
    sender.reports = False
    sender.run(2.4)
    assert sender.controller.target_kbps == 1500
    sender.run(0.2)
    assert sender.controller.target_kbps == pytest.approx(QUEUE_BACKOFF * 1500)
    sender.run(HOLD_S + 0.1)
    assert sender.controller.target_kbps == pytest.approx(QUEUE_BACKOFF**2 * 1500), "again while it lasts"
    sender.reports = True
    sender.run(10)
    assert sender.controller.target_kbps > QUEUE_BACKOFF * 1500, "and it grows again once reports come"


def test_the_target_stays_within_its_bounds() -> None:
    sender = climbed()
    sender.controller.on_estimate(40, sender.now)
    assert sender.controller.target_kbps == 100
    sender.controller.on_loss(0.9, sender.now)
    assert sender.controller.target_kbps == 100


def test_under_the_full_rate_every_second_then_every_third_frame_is_sent_and_back_only_with_room() -> None:
    controller = RateController(50, 1500, 300, FULL_RATE)
    assert controller.frame_step == 1
    controller.on_estimate(1000, 0.0)
    controller.on_estimate(180, 0.0)  # 180 x 2 >= 197
    assert controller.frame_step == 2
    controller.on_estimate(60, 0.1)  # 60 x 2 < 197, and 3 is the most
    assert controller.frame_step == 3
    sender = Sender(controller)
    sender.now = 0.2
    for _ in range(300):  # the target grows back, and the frames with it, each step with a margin
        sender.run(0.2)
        target, step = controller.target_kbps, controller.frame_step
        assert target * step >= FULL_RATE or step == 3
        if step < 3:
            assert target * (step + 1) >= 1.15 * FULL_RATE or target * step >= FULL_RATE
    assert controller.frame_step == 1 and controller.target_kbps == 1500


def test_keyframe_requests_are_answered_at_most_once_per_interval_and_periodic_ones_come_anyway() -> None:
    pacer = KeyframePacer(min_interval_frames=13, period_frames=50)
    assert pacer.due(0), "the first frame"
    pacer.keyframe_sent(0)
    sent = [0]
    for frame in range(1, 200):
        if frame < 100:
            pacer.request()  # a storm: every frame asks
        if pacer.due(frame):
            pacer.keyframe_sent(frame)
            sent.append(frame)
    assert sent[:8] == [0, 13, 26, 39, 52, 65, 78, 91], "the storm: one per 13 frames, never one per request"
    assert sent[8:] == [104, 154], "the last request answered, then periodic"
    assert (pacer.requests, pacer.sent) == (99, 10) and not pacer.requested


def test_repeated_nacks_resend_each_packet_once_per_interval() -> None:
    """aiortc's receiver NACKs every packet it still misses each time it sees a new gap."""
    limiter = RetransmitLimiter(share=0.5)
    assert limiter.allow([10, 11], 1500, 0.0) == [10, 11]
    assert limiter.allow([10, 11, 20], 1500, 0.05) == [20], "10 and 11 were just sent again"
    assert limiter.allow([10, 11, 20, 30], 1500, AGAIN_S + 0.01) == [10, 11, 30]
    assert (limiter.asked, limiter.resent) == (9, 6)


def test_retransmissions_stay_within_their_share_of_the_target() -> None:
    limiter = RetransmitLimiter(share=0.5)
    per_second = 0.5 * 200 * 1000 / 8 / PACKET_BYTES  # 10.4 packets a second at 200 kbit/s
    resent = sum(len(limiter.allow(list(range(i * 10, i * 10 + 10)), 200, i * 0.1)) for i in range(50))  # 5 s
    assert resent <= per_second * 6 + 1, "a second's burst, then the rate"
    assert resent >= per_second * 4
