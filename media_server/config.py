"""Media settings of the edge (the `sessions`, `video`, `inference`, `avatars` sections)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from lipstream.config import StrictModel


class InferenceTargetsConfig(StrictModel):
    targets: list[str] = Field(default_factory=lambda: ["127.0.0.1:50051"], min_length=1)
    max_message_mb: float = Field(16.0, gt=0)
    backoff_initial_s: float = Field(0.1, gt=0)
    backoff_max_s: float = Field(5.0, gt=0)


class AvatarsConfig(StrictModel):
    directory: Path | None = Field(None, description="avatar directories live here (default: the cache)")
    default: str = "default"
    memory_budget_mb: float = Field(1024.0, gt=0)


class VideoConfig(StrictModel):
    bitrate_kbps: int = Field(1500, ge=100, le=50_000)
    keyframe_interval_s: float = Field(2.0, gt=0, le=2.0)
    preset: str = "ultrafast"


class SessionConfig(StrictModel):
    max_sessions: int = Field(8, ge=1)
    connect_timeout_s: float = Field(30.0, gt=0)
    pipeline_frames: int = Field(3, ge=1, le=25, description="inference requests sent this many frames ahead")
    max_speech_mb: float = Field(20.0, gt=0)
    max_speech_seconds: float = Field(120.0, gt=0)
    max_queued_utterances: int = Field(16, ge=1)
    stats_interval_s: float = Field(0.5, gt=0)
    live_chunk_max_kb: int = Field(256, ge=1)
    live_buffer_seconds: float = Field(10.0, gt=0, description="a live feed may run this far ahead of playback")
