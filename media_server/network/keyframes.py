"""When a session's own encoder makes a keyframe: periodically, and for its viewer's requests, but not for each.

A viewer that lost packets asks for a keyframe (PLI/FIR), and goes on asking while its picture is
broken; under loss, requests come in storms. A keyframe is the largest frame, and on a congested
link one per request would make the loss that caused them worse. So a request is answered by the
first frame at least `min_interval` frames after the last keyframe (never lost: it waits), and
each keyframe, however it came, answers every request before it. Counted in frames, on the
session's clock, which also dates the periodic keyframes of its own encoder.
"""

from __future__ import annotations


class KeyframePacer:
    def __init__(self, min_interval_frames: int, period_frames: int) -> None:
        self._min_interval = min_interval_frames
        self._period = period_frames
        self._last: int | None = None  # the session frame of the last keyframe sent
        self._requested = False
        self.requests = 0  # keyframe requests received
        self.sent = 0  # keyframes sent, whatever made them

    @property
    def requested(self) -> bool:
        """A request waits for a keyframe."""
        return self._requested

    def request(self) -> None:
        self.requests += 1
        self._requested = True

    def due(self, frame: int) -> bool:
        """Whether the session's own encoder should make `frame` a keyframe."""
        if self._last is None:
            return True
        since = frame - self._last
        return since >= self._period or (self._requested and since >= self._min_interval)

    def keyframe_sent(self, frame: int) -> None:
        self._last = frame
        self._requested = False
        self.sent += 1
