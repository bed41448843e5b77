"""Per-session counters and stage timings, for the `stats` data channel; each count also feeds /metrics."""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from media_server.metrics import EdgeMetrics


class SessionStats:
    """Medians over the last `window` frames; every count also feeds the edge's metrics."""

    def __init__(self, metrics: EdgeMetrics | None = None, window: int = 50) -> None:
        self._metrics = metrics
        self._window = window
        self.frames_sent = 0
        self.speaking_frames = 0
        self.late_frames = 0
        self.skipped_frames = 0
        self.passed_over_frames = 0  # not sent, to fit the viewer's link (every 2nd or 3rd is sent)
        self.shared_frames = 0  # sent from the avatar's shared idle loop, encoded by nobody for this session
        self._stages: dict[str, deque[float]] = {}
        self._sent_at: deque[float] = deque(maxlen=window)

    def record(self, stage: str, ms: float) -> None:
        self._stages.setdefault(stage, deque(maxlen=self._window)).append(ms)
        if self._metrics is not None:
            self._metrics.stage(stage).observe(ms / 1000)

    def frame_sent(self, at: float) -> None:
        self.frames_sent += 1
        self._sent_at.append(at)
        if self._metrics is not None:
            self._metrics.frames_sent.inc()

    def shared_frame(self) -> None:
        self.shared_frames += 1
        if self._metrics is not None:
            self._metrics.shared_frames.inc()

    def speaking(self) -> None:
        self.speaking_frames += 1
        if self._metrics is not None:
            self._metrics.speaking_frames.inc()

    def late(self) -> None:
        self.late_frames += 1
        if self._metrics is not None:
            self._metrics.late_frames.inc()

    def skipped(self, frames: int) -> None:
        self.skipped_frames += frames
        if self._metrics is not None:
            self._metrics.skipped_frames.inc(frames)

    def passed_over(self, frames: int) -> None:
        self.passed_over_frames += frames

    def fps(self) -> float:
        if len(self._sent_at) < 2:
            return 0.0
        span = self._sent_at[-1] - self._sent_at[0]
        return (len(self._sent_at) - 1) / span if span > 0 else 0.0

    def snapshot(self) -> dict[str, Any]:
        # The render thread records stages while this runs on the loop: copy first (each copy is one
        # C call, so the GIL makes it whole), or a stage seen for the first time breaks the iteration.
        recorded = [(stage, tuple(values)) for stage, values in list(self._stages.items())]
        stages = {stage: round(float(np.median(values)), 3) for stage, values in recorded if values}
        return {
            "fps": round(self.fps(), 2),
            "frames_sent": self.frames_sent,
            "speaking_frames": self.speaking_frames,
            "late_frames": self.late_frames,
            "skipped_frames": self.skipped_frames,
            "passed_over_frames": self.passed_over_frames,
            "shared_frames": self.shared_frames,
            "stages_ms": stages,
        }
