"""The rate controller driven by synthetic receiver feedback (estimates, loss, round trips) over a synthetic clock;
the keyframe pacer under a storm of requests; the retransmission limiter under aiortc's repeated NACKs."""

from __future__ import annotations

import pytest

from media_server.network.keyframes import KeyframePacer
from media_server.network.rate_control import (
    CARRIED_FOR_S,
    HOLD_S,
    PACKET_HEADERS,
    QUEUE_BACKOFF,
    STREAM_START_HEADROOM,
    VIDEO_PACKET_PAYLOAD,
    RateController,
    full_rate_kbps,
)
from media_server.network.retransmit import AGAIN_S, PACKET_BYTES, RetransmitLimiter

FRAME_S = 0.04
FULL_RATE = full_rate_kbps(0.03, 512, 512)  # 197 kbit/s: a 512x512 frame's minimum at 25 fps
BASE_RTT = 0.02


class Sender:
    """A session sending one frame every 40 ms at the controller's target (or at `app_kbps`, when it has less),
    and its receiver reporting `loss` and `rtt` once a second (unless `reports` is off), and `estimate` with
    every frame (when set)."""

    def __init__(self, controller: RateController) -> None:
        self.controller = controller
        self.now = 0.0
        self.frames = 0
        self.loss = 0.0
        self.rtt = BASE_RTT
        self.reports = True
        self.estimate: float | None = None  # sent with every frame when set, as aiortc's receiver does
        self.targets: list[float] = []

    def run(self, seconds: float, app_kbps: float | None = None) -> None:
        for _ in range(round(seconds / FRAME_S)):
            self.now += FRAME_S
            self.frames += 1
            if self.reports and self.frames % 25 == 0:
                self.report()
            if self.estimate is not None:
                self.controller.on_estimate(self.estimate, self.now)
            kbps = self.controller.target_kbps if app_kbps is None else min(app_kbps, self.controller.target_kbps)
            self.controller.on_sent(round(kbps * 1000 / 8 * FRAME_S), self.now)
            self.targets.append(self.controller.target_kbps)

    def report(self) -> None:
        self.controller.on_loss(self.loss, self.now)
        self.controller.on_rtt(self.rtt, self.now)


def controller() -> RateController:
    return RateController(100, 1500, 300, FULL_RATE)


def climbed() -> Sender:
    """At the max, on a link that never pushed back."""
    sender = Sender(controller())
    sender.run(6)
    sender.controller.on_estimate(250, sender.now)  # what reached it: no ceiling
    sender.controller.on_estimate(1600, sender.now)  # a rise: followed by nothing
    assert sender.controller.target_kbps == 1500
    return sender


def pushed_back_by_the_estimate(kbps: int) -> Sender:
    """At the max, then a receiver's estimate that falls to `kbps`, confirmed by a report with loss."""
    sender = climbed()
    controller = sender.controller
    controller.on_loss(0.05, sender.now)
    controller.on_estimate(1000, sender.now)
    controller.on_estimate(kbps, sender.now)
    assert controller.target_kbps == kbps
    return sender


def test_it_holds_the_start_bitrate_until_the_first_report_then_grows_by_half_a_report_to_the_max() -> None:
    sender = Sender(controller())
    sender.reports = False
    assert sender.controller.target_kbps == 300 and sender.controller.frame_step == 1
    sender.run(10)
    assert set(sender.targets) == {300}, "no growth before the receiver says anything"
    sender.reports = True
    sender.run(1)
    assert sender.controller.target_kbps == pytest.approx(450), "the first report: half as much again"
    sender.run(4)
    targets = sender.targets[round(10 / FRAME_S) :]
    assert all(b >= a for a, b in zip(targets, targets[1:], strict=False)), "it never falls by itself"
    assert targets[-1] == 1500, "... to the max in four reports: the estimate is no ceiling"


def test_a_report_that_shows_a_queue_or_loss_stops_the_growth() -> None:
    sender = Sender(controller())
    sender.reports = False
    sender.run(2)
    sender.reports = True
    sender.run(1)
    grown = sender.controller.target_kbps
    assert grown > 400
    sender.rtt = BASE_RTT + 0.12  # a queue, not yet a push-back
    sender.run(3)
    assert sender.controller.target_kbps == grown
    sender.rtt, sender.loss = BASE_RTT, 0.05
    sender.run(3)
    assert sender.controller.target_kbps == grown, "2-10 % lost: it holds, however long"
    sender.loss = 0.0
    sender.run(1)
    assert sender.controller.target_kbps == pytest.approx(1.5 * grown)


def test_an_estimate_that_falls_is_followed_only_once_a_report_confirms_the_strain() -> None:
    """A receiver's estimate dips when its CPU stalls or a keyframe passes: on a link with room, nothing."""
    sender = climbed()
    controller = sender.controller
    controller.on_estimate(500, sender.now)
    sender.run(3)
    assert controller.target_kbps == 1500 and controller.estimate_kbps == 500
    controller.on_estimate(400, sender.now)
    sender.loss = 0.05  # the next report shows loss
    sender.run(1)
    assert controller.target_kbps == 400


def test_a_queue_pushes_back_by_what_was_sent_however_low_the_receivers_estimate() -> None:
    """Chromium's estimate sits far under a 600 kbit/s link: the queue's push-back goes by what was sent."""
    sender = Sender(controller())
    rate = sender.controller
    rate.on_estimate(110, sender.now)  # from the first report on, and it never falls
    sender.run(6)
    assert rate.target_kbps == 1500
    sent = rate.sent_kbps(sender.now)
    rate.on_rtt(BASE_RTT + 0.2, sender.now)
    assert rate.target_kbps == pytest.approx(QUEUE_BACKOFF * sent * (1 - 0.2 / 2), rel=0.01)


def test_after_a_push_back_it_holds_then_grows_slowly_near_it_and_faster_beyond() -> None:
    sender = pushed_back_by_the_estimate(500)
    controller = sender.controller
    sender.loss = 0.0
    sender.run(HOLD_S - 0.1)
    assert controller.target_kbps == 500, "no growth right after the link pushed back"
    sender.run(2)
    assert controller.target_kbps == pytest.approx(500 * 1.03**2), "3 % a report: the link was full there"
    sender.run(40)
    assert controller.target_kbps == 1500, "the link has recovered"


def test_an_idle_session_that_sends_less_than_its_target_keeps_its_target_near_what_it_sends() -> None:
    """An idle session sends a rung of its loop: its target stays within 1.5 times that, where its own
    encoder starts when speech does."""
    sender = Sender(controller())
    sender.run(10, app_kbps=250)
    assert sender.controller.target_kbps == pytest.approx(1.5 * 250, rel=0.05)


def test_speech_starts_a_little_over_what_the_idle_loop_sent_not_at_the_room_it_grew() -> None:
    sender = Sender(controller())
    sender.run(10, app_kbps=440)
    controller_ = sender.controller
    assert controller_.target_kbps > 600, "1.5 times the rung: room no report has seen used"
    sent = controller_.sent_kbps(sender.now)
    controller_.on_stream_start(sender.now)
    assert controller_.target_kbps == pytest.approx(STREAM_START_HEADROOM * sent)


def test_speech_starts_where_the_link_carried_it_within_the_last_minute() -> None:
    sender = climbed()
    sender.run(CARRIED_FOR_S - 10, app_kbps=440)  # idle since, the link quiet
    sender.controller.on_stream_start(sender.now)
    assert sender.controller.target_kbps == pytest.approx(1500, rel=0.01), "what the last clean report saw sent"
    sender = climbed()
    sender.run(CARRIED_FOR_S + 10, app_kbps=440)
    sender.controller.on_stream_start(sender.now)
    assert sender.controller.target_kbps < 600, "too long ago"


def test_a_report_that_shows_a_queue_takes_away_the_room_above_what_an_idle_session_sends() -> None:
    sender = Sender(controller())
    sender.run(10, app_kbps=440)
    assert sender.controller.target_kbps > 600
    sender.rtt = BASE_RTT + 0.12  # the rung nearly fills the link
    sender.run(1, app_kbps=440)
    assert sender.controller.target_kbps == pytest.approx(sender.controller.sent_kbps(sender.now), rel=0.05)


def test_loss_over_ten_percent_cuts_the_budget_by_half_that() -> None:
    sender = climbed()
    controller = sender.controller
    controller.on_loss(0.2, sender.now)
    assert controller.target_kbps == pytest.approx(1500 * 0.9) and controller.loss == 0.2
    for _ in range(10):  # the same loss in the reports a browser sends with each NACK, within the hold
        controller.on_loss(0.2, sender.now + 0.1)
    assert controller.target_kbps == pytest.approx(1500 * 0.9)
    controller.on_loss(0.2, sender.now + HOLD_S + 0.1)
    assert controller.target_kbps == pytest.approx(1500 * 0.9 * 0.9)


def test_a_queue_in_one_report_pushes_back_below_what_was_sent_by_what_drains_it() -> None:
    sender = climbed()
    controller = sender.controller
    sent = controller.sent_kbps(sender.now)
    controller.on_rtt(BASE_RTT + 0.4, sender.now)  # 400 ms queued: drained over 2 s at a fifth of the rate
    assert controller.target_kbps == pytest.approx(QUEUE_BACKOFF * sent * 0.8, rel=0.01)
    assert controller.rtt_s == pytest.approx(BASE_RTT + 0.4)


def pushed_back_by_a_queue(queued_s: float) -> tuple[Sender, float]:
    """At the max, then one report with `queued_s` queued; reports off after it. The sender and its target."""
    sender = climbed()
    sender.reports = False
    sender.controller.on_rtt(BASE_RTT + queued_s, sender.now)
    return sender, sender.controller.target_kbps


def test_a_queue_that_drains_holds_the_budget_and_one_that_grows_again_pushes_back_again() -> None:
    sender, pushed = pushed_back_by_a_queue(0.4)
    controller = sender.controller
    sender.run(HOLD_S + 0.1)
    controller.on_rtt(BASE_RTT + 0.3, sender.now)  # shorter: draining
    sender.run(1)
    assert controller.target_kbps == pushed, "no second push-back, and no growth"
    sent = controller.sent_kbps(sender.now)
    controller.on_rtt(BASE_RTT + 0.35, sender.now)  # longer again: what it sends is still too much
    assert controller.target_kbps == pytest.approx(QUEUE_BACKOFF * sent * (1 - 0.35 / 2), rel=0.01)


def test_a_report_that_still_measures_the_queue_made_before_the_push_back_does_not_push_back_again() -> None:
    sender, pushed = pushed_back_by_a_queue(0.4)
    controller = sender.controller
    sender.run(HOLD_S + 0.2)
    controller.on_rtt(BASE_RTT + 0.5, sender.now)  # its packets were sent before the push-back had crossed the queue
    assert controller.target_kbps == pushed
    sender.run(0.3)
    controller.on_rtt(BASE_RTT + 0.5, sender.now)  # still 500 ms: what it sends now is too much
    assert controller.target_kbps < pushed


def test_what_was_sent_counts_each_rtp_packets_headers() -> None:
    controller = RateController(100, 1500, 300, FULL_RATE)
    controller.on_sent(13_000, 0.0)  # ten packets of 1300 bytes
    controller.on_sent(1, 0.5)  # one
    assert controller.sent_kbps(0.5) == pytest.approx((13_000 + 1 + 11 * PACKET_HEADERS) * 8 / 1000)


def test_packets_sent_again_come_out_of_the_videos_share() -> None:
    sender = pushed_back_by_the_estimate(600)
    controller = sender.controller
    controller.on_resent(10, sender.now)  # 10 full-size packets in the last second
    assert controller.target_kbps == pytest.approx(600 - 10 * (VIDEO_PACKET_PAYLOAD + PACKET_HEADERS) * 8 / 1000)


def test_the_audio_takes_its_share_of_the_budget_from_its_first_packet() -> None:
    sender = pushed_back_by_the_estimate(600)
    controller = sender.controller
    controller.on_audio_sent(160, sender.now)  # 20 ms of speech
    audio_kbps = (160 + PACKET_HEADERS) * 8 / 1000 / 0.02
    assert controller.target_kbps == pytest.approx(600 - audio_kbps)


def test_at_the_max_the_video_keeps_it_however_the_speech_packets_vary() -> None:
    sender = climbed()
    targets = []
    for packet in range(50 * 10):  # 10 s of speech, each 20 ms packet 100-220 bytes
        now = sender.now + packet * 0.02
        sender.controller.on_audio_sent(100 + 120 * (packet * 7 % 11) // 10, now)
        if packet % 50 == 25:
            sender.controller.on_loss(0.0, now)
            sender.controller.on_rtt(BASE_RTT, now)
        if packet % 2 == 0:
            sender.controller.on_sent(1500 * 1000 // 8 // 25 + 400, now)  # the video and the speech's share
        targets.append(sender.controller.target_kbps)
    assert min(targets[50:]) == 1500


def test_no_report_while_sending_is_a_full_queue_holding_it_back_whatever_estimates_slip_through() -> None:
    sender = climbed()
    sender.reports = False
    sender.estimate = 1600
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
    sender.controller.on_loss(0.05, sender.now)
    sender.controller.on_estimate(40, sender.now)
    assert sender.controller.target_kbps == 100
    sender.controller.on_loss(0.9, sender.now)
    assert sender.controller.target_kbps == 100


def test_under_the_full_rate_every_second_then_every_third_frame_is_sent_and_back_only_with_room() -> None:
    controller = RateController(50, 1500, 300, FULL_RATE)
    assert controller.frame_step == 1
    controller.on_loss(0.05, 0.0)
    controller.on_estimate(1000, 0.0)
    controller.on_estimate(180, 0.0)  # 180 x 2 >= 197
    assert controller.frame_step == 2
    controller.on_estimate(60, 0.1)  # 60 x 2 < 197, and 3 is the most
    assert controller.frame_step == 3
    sender = Sender(controller)
    sender.now = 0.2
    for _ in range(500):  # the target grows back, and the frames with it, each step with a margin
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
