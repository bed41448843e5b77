"""The edge's configuration (configs/edge.yaml): one object for the HTTP API and the media core.

Every field has a default; `load_edge_config` layers the YAML file, LIPSTREAM_EDGE_* variables
and CLI flags over them (`lipstream.config`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from lipstream.config import StrictModel, load_config


class HttpConfig(StrictModel):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    workers: Annotated[int, Field(ge=1, le=256)] | Literal["auto"] = Field(
        1, description="edge processes behind the one port; auto = the usable cores (serve: one fewer)"
    )
    cors_origins: list[str] = Field(default_factory=list, description="origins allowed to call the API")
    api_key: str | None = Field(None, description="when set, creating a session needs 'Authorization: Bearer KEY'")
    ice_servers: list[str] = Field(default_factory=list, description="STUN/TURN URLs for NAT traversal")
    max_sdp_kb: int = Field(64, ge=4, le=1024, description="largest SDP offer")
    max_sdp_media: int = Field(16, ge=1, le=256, description="most m-lines in an offer")
    max_trickle_candidates: int = Field(32, ge=1, le=1024, description="most ICE candidates in one PATCH")
    sessions_per_minute: float = Field(30.0, gt=0, description="new sessions one client address may open, sustained")
    session_burst: int = Field(10, ge=1, description="... and at once")


class InferenceTargetsConfig(StrictModel):
    targets: list[str] = Field(default_factory=lambda: ["127.0.0.1:50051"], min_length=1)
    max_message_mb: float = Field(16.0, gt=0)
    backoff_initial_s: float = Field(0.1, gt=0)
    backoff_max_s: float = Field(5.0, gt=0)
    health_interval_s: float = Field(1.0, gt=0, le=60, description="how often /health's answer is refreshed")


class AvatarsConfig(StrictModel):
    directory: Path | None = Field(None, description="avatar directories live here (default: the cache)")
    default: str = "default"
    memory_budget_mb: float = Field(1024.0, gt=0)


class VideoConfig(StrictModel):
    bitrate_kbps: int = Field(1500, ge=100, le=50_000)
    keyframe_interval_s: float = Field(2.0, gt=0, le=2.0)
    shared_keyframe_interval_s: float = Field(
        1.0, ge=0.04, le=1.0, description="keyframes of the idle loop idle sessions share: the longest wait to join it"
    )
    preset: str = "ultrafast"
    idle_preset: str = Field("medium", description="x264 preset of the idle loop, encoded once per avatar and worker")
    idle_crf: int = Field(26, ge=0, le=51, description="the idle loop's constant quality (lower: better, more bits)")


class SessionConfig(StrictModel):
    max_sessions: int = Field(6, ge=1, description="what a 2-core machine carries speaking at 25 fps")
    max_connecting: int = Field(4, ge=1, description="sessions whose WebRTC connection is not up yet")
    connect_timeout_s: float = Field(10.0, gt=0, le=60, description="a session not connected by then is ended")
    overload_late_pct: float = Field(
        10.0, gt=0, le=100, description="new sessions are refused while more of the recent frames than this are late"
    )
    overload_window_s: float = Field(3.0, gt=0, le=60)
    pipeline_frames: int = Field(3, ge=1, le=25, description="inference requests sent this many frames ahead")
    max_speech_mb: float = Field(20.0, gt=0)
    max_speech_seconds: float = Field(120.0, gt=0)
    max_queued_utterances: int = Field(16, ge=1)
    stats_interval_s: float = Field(0.5, gt=0)
    live_chunk_max_kb: int = Field(256, ge=1)
    live_buffer_seconds: float = Field(10.0, gt=0, description="a live feed may run this far ahead of playback")
    drain_timeout_s: float = Field(
        30.0, gt=0, le=3600, description="after SIGTERM, running sessions go on this long at most; new ones get 503"
    )


class EdgeConfig(StrictModel):
    http: HttpConfig = Field(default_factory=HttpConfig)
    sessions: SessionConfig = Field(default_factory=SessionConfig)
    video: VideoConfig = Field(default_factory=VideoConfig)
    inference: InferenceTargetsConfig = Field(default_factory=InferenceTargetsConfig)
    avatars: AvatarsConfig = Field(default_factory=AvatarsConfig)
    audio_encoder: Path | None = Field(None, description="ONNX audio encoder [B,1,80,16]->[B,512]; default built-in")


ENV_PREFIX = "LIPSTREAM_EDGE_"


def load_edge_config(path: Path | None, overrides: dict[str, object] | None = None) -> EdgeConfig:
    return load_config(EdgeConfig, path, ENV_PREFIX, overrides)
