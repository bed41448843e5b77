"""One viewer's link as its session sees it: the feedback the viewer sends back, and what the session makes of it.

The viewer's RTCP reaches it through `media_server.webrtc.feedback`: estimates and loss set the
target bitrate and frame step (`rate_control`), keyframe requests go to the pacer (`keyframes`),
NACKed packets are sent again within a budget (`retransmit`; aiortc resends them from its own history). The session's
video out reads the target and the pacer, and reports every packet it sends.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from lipstream.timebase import FRAME_SECONDS, VIDEO_FPS
from media_server.config import VideoConfig
from media_server.network.keyframes import KeyframePacer
from media_server.network.rate_control import RateController, full_rate_kbps
from media_server.network.retransmit import RetransmitLimiter


class ViewerLink:
    def __init__(
        self, video: VideoConfig, width: int, height: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._clock = clock
        self.rate = RateController(
            video.min_bitrate_kbps,
            video.max_bitrate_kbps,
            video.start_bitrate_kbps,
            full_rate_kbps(video.min_bits_per_pixel, width, height),
        )
        self.keyframes = KeyframePacer(
            math.ceil(video.min_keyframe_interval_ms / 1000 / FRAME_SECONDS),
            max(1, round(video.keyframe_interval_s * VIDEO_FPS)),
        )
        self.retransmits = RetransmitLimiter(video.retransmit_share)
        self.estimates = 0  # receiver estimates (REMB) received

    # -- the viewer's feedback ------------------------------------------------------------------
    def estimate(self, bps: int) -> None:
        self.estimates += 1
        self.rate.on_estimate(bps / 1000, self._clock())

    def loss(self, fraction: float) -> None:
        self.rate.on_loss(fraction, self._clock())

    def round_trip(self, seconds: float) -> None:
        self.rate.on_rtt(seconds, self._clock())

    def keyframe_requested(self) -> None:
        self.keyframes.request()

    def nacked(self, sequence_numbers: list[int]) -> list[int]:
        """The packets of a NACK that are sent again."""
        now = self._clock()
        again = self.retransmits.allow(sequence_numbers, self.rate.target_kbps, now)
        self.rate.on_resent(len(again), now)
        return again

    # -- the session's video ----------------------------------------------------------------------
    def sent(self, size: int) -> None:
        self.rate.on_sent(size, self._clock())

    def own_encoder_starts(self) -> None:
        self.rate.on_stream_start(self._clock())

    def audio_sent(self, size: int) -> None:
        self.rate.on_audio_sent(size, self._clock())

    def snapshot(self) -> dict[str, Any]:
        estimate, loss = self.rate.estimate_kbps, self.rate.loss
        return {
            "target_kbps": round(self.rate.target_kbps),
            "sent_kbps": round(self.rate.sent_kbps(self._clock())),
            "estimate_kbps": None if estimate is None else round(estimate),
            "estimates": self.estimates,
            "loss_pct": None if loss is None else round(100 * loss, 1),
            "rtt_ms": None if self.rate.rtt_s is None else round(1000 * self.rate.rtt_s),
            "frame_step": self.rate.frame_step,
            "keyframe_requests": self.keyframes.requests,
            "keyframes_sent": self.keyframes.sent,
            "nacked_packets": self.retransmits.asked,
            "retransmitted_packets": self.retransmits.resent,
        }
