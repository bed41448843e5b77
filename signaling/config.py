"""Edge configuration (configs/edge.yaml): HTTP, sessions, video, inference targets, avatars."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from lipstream.config import StrictModel, load_config
from media_server.config import AvatarsConfig, InferenceTargetsConfig, SessionConfig, VideoConfig


class HttpConfig(StrictModel):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    cors_origins: list[str] = Field(default_factory=list, description="origins allowed to call the API")
    api_key: str | None = Field(None, description="when set, creating a session needs 'Authorization: Bearer KEY'")
    ice_servers: list[str] = Field(default_factory=list, description="STUN/TURN URLs for NAT traversal")


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
