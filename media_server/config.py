"""The edge's configuration (configs/edge.yaml): one object for the HTTP API and the media core.

Every field has a default; `load_edge_config` layers the YAML file, LIPSTREAM_EDGE_* variables
and CLI flags over them (`lipstream.config`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, IPvAnyAddress, field_validator, model_validator

from lipstream.config import StrictModel, load_config

# What aiortc parses (its STUN/TURN regexes), credentials never inside: RFC 7064/7065 URIs.
_ICE_URL = re.compile(r"(?P<scheme>stuns?|turns?):(?P<host>[^?:@/\s\[\]]+)(:\d{1,5})?(\?transport=(udp|tcp))?")


def _ice_url(url: str) -> str:
    """A STUN or TURN URL as browsers and aiortc take it; credentials belong in username and credential."""
    if "@" in url:  # named without them: the message is printed
        shown = url.split(":", 1)[0] + ":…@" + url.rsplit("@", 1)[1]
        raise ValueError(f"{shown!r}: credentials go in username/credential (or turn.secret), never in the URL")
    found = _ICE_URL.fullmatch(url)
    if found is None:
        raise ValueError(f"{url!r} is not a stun:, stuns:, turn: or turns: URL (HOST[:PORT][?transport=udp|tcp])")
    if found["scheme"].startswith("stun") and "?" in url:
        raise ValueError(f"{url!r}: a STUN URL has no transport")
    return url


def _turn_url(url: str) -> str:
    if not _ice_url(url).startswith("turn"):
        raise ValueError(f"{url!r} is not a turn: or turns: URL")
    return url


IceUrl = Annotated[str, AfterValidator(_ice_url)]
TurnUrl = Annotated[str, AfterValidator(_turn_url)]


def _public_url(url: str) -> str:
    """http(s)://host[:port][/prefix], kept without a trailing slash (paths are appended to it)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ValueError(f"{url!r} is not an http:// or https:// base URL (no query, no fragment)")
    return url.rstrip("/")


def _port_range(text: str) -> str:
    low, _, high = text.partition("-")
    if not (low.strip().isdigit() and high.strip().isdigit()):
        raise ValueError(f"{text!r} is not a port range FIRST-LAST (e.g. 40000-40999)")
    if not 1024 <= int(low) <= int(high) <= 65535:
        raise ValueError(f"{text!r}: the ports must be 1024-65535, the first not above the last")
    return f"{int(low)}-{int(high)}"


class IceServerConfig(StrictModel):
    """A STUN or TURN server with static credentials, handed to clients and used by the edge."""

    urls: list[IceUrl] = Field(min_length=1)
    username: str | None = None
    credential: str | None = None


class TurnConfig(StrictModel):
    """TURN with short-lived credentials from a secret shared with the TURN server (coturn's use-auth-secret)."""

    urls: list[TurnUrl] = Field(default_factory=list, description="e.g. turn:turn.example.com:3478?transport=udp")
    secret: str | None = Field(None, description="coturn's static-auth-secret; set it in the environment")
    ttl_s: int = Field(3600, ge=60, le=7 * 86400, description="how long minted credentials stay valid")

    @model_validator(mode="after")
    def _both_or_neither(self) -> TurnConfig:
        if bool(self.urls) != bool(self.secret):
            raise ValueError("turn.urls and turn.secret are set together (or neither)")
        return self


class HttpConfig(StrictModel):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    workers: Annotated[int, Field(ge=1, le=256)] | Literal["auto"] = Field(
        1, description="edge processes behind the one port; auto = the usable cores (serve: one fewer)"
    )
    cors_origins: list[str] = Field(default_factory=list, description="origins allowed to call the API")
    api_key: str | None = Field(None, description="when set, creating a session needs 'Authorization: Bearer KEY'")
    public_url: Annotated[str, AfterValidator(_public_url)] | None = Field(
        None, description="this edge's own base URL: every URL bound to a session is made from it"
    )
    ice_servers: list[IceServerConfig] = Field(
        default_factory=list, description="STUN/TURN servers with static credentials (or none): URLs or {urls, ...}"
    )
    turn: TurnConfig = Field(default_factory=TurnConfig)
    ice_port_range: Annotated[str, AfterValidator(_port_range)] | None = Field(
        None, description="FIRST-LAST: every UDP port the edge's ICE agent binds is in this range"
    )
    public_ip: IPvAnyAddress | None = Field(
        None, description="advertised in host candidates instead of the interface's address (1:1 NAT)"
    )
    max_sdp_kb: int = Field(64, ge=4, le=1024, description="largest SDP offer")
    max_sdp_media: int = Field(16, ge=1, le=256, description="most m-lines in an offer")
    max_trickle_candidates: int = Field(32, ge=1, le=1024, description="most ICE candidates in one PATCH")
    sessions_per_minute: float = Field(30.0, gt=0, description="new sessions one client address may open, sustained")
    session_burst: int = Field(10, ge=1, description="... and at once")

    @field_validator("ice_servers", mode="before")
    @classmethod
    def _urls_alone(cls, servers: object) -> object:
        """A bare URL is a server without credentials (the short form configs/edge.yaml shows)."""
        if isinstance(servers, list):
            return [{"urls": [server]} if isinstance(server, str) else server for server in servers]
        return servers

    @property
    def ice_ports(self) -> tuple[int, int] | None:
        """`ice_port_range` as (first, last), both included."""
        if self.ice_port_range is None:
            return None
        low, high = self.ice_port_range.split("-")
        return int(low), int(high)


class InferenceTargetsConfig(StrictModel):
    targets: list[str] = Field(default_factory=lambda: ["127.0.0.1:50051"], min_length=1)
    protocol: Literal["lipsync", "kserve"] = Field(
        "lipsync", description="lipsync.v1, or KServe v2 (e.g. NVIDIA Triton serving an export-triton repository)"
    )
    max_message_mb: float = Field(16.0, gt=0)
    backoff_initial_s: float = Field(0.1, gt=0)
    backoff_max_s: float = Field(5.0, gt=0)
    health_interval_s: float = Field(1.0, gt=0, le=60, description="how often /health's answer is refreshed")


class AvatarsConfig(StrictModel):
    directory: Path | None = Field(None, description="avatar directories live here (default: the cache)")
    default: str = "default"
    memory_budget_mb: float = Field(1024.0, gt=0)


class VideoConfig(StrictModel):
    """A session's video: its encoder follows the viewer's link between the bitrate bounds."""

    max_bitrate_kbps: int = Field(1500, ge=50, le=50_000, description="what a session sends on a link with room")
    min_bitrate_kbps: int = Field(100, ge=30, le=50_000, description="the least, however little the link carries")
    start_bitrate_kbps: int = Field(
        300,
        ge=30,
        le=50_000,
        description="until the viewer's first report; the target then climbs from here as its feedback allows",
    )
    min_bits_per_pixel: float = Field(
        0.03,
        ge=0,
        le=1,
        description="a frame gets at least this many bits a pixel: below, every 2nd frame is sent, then every 3rd",
    )
    min_keyframe_interval_ms: int = Field(
        500, ge=0, le=10_000, description="keyframe requests (PLI/FIR) of one viewer are answered at most this often"
    )
    retransmit_share: float = Field(
        0.5,
        ge=0,
        le=1,
        description="packets a viewer NACKs are sent again within this share of the target bitrate (each at most "
        "once per 250 ms)",
    )
    keyframe_interval_s: float = Field(2.0, gt=0, le=2.0)
    shared_keyframe_interval_s: float = Field(
        1.0, ge=0.04, le=1.0, description="keyframes of the idle loop idle sessions share: the longest wait to join it"
    )
    preset: str = "ultrafast"
    idle_preset: str = Field("medium", description="x264 preset of the idle loop, encoded once per avatar and worker")
    idle_crf: int = Field(26, ge=0, le=51, description="the idle loop's constant quality (lower: better, more bits)")
    idle_rungs_kbps: list[int] = Field(
        default_factory=lambda: [350, 250, 150],
        max_length=4,
        description="bitrates of the idle loop's lower rungs, for idle viewers whose link carries less",
    )

    @model_validator(mode="after")
    def _bitrates_are_ordered(self) -> VideoConfig:
        if not self.min_bitrate_kbps <= self.start_bitrate_kbps <= self.max_bitrate_kbps:
            raise ValueError(
                f"video.start_bitrate_kbps ({self.start_bitrate_kbps}) must lie between video.min_bitrate_kbps "
                f"({self.min_bitrate_kbps}) and video.max_bitrate_kbps ({self.max_bitrate_kbps})"
            )
        rungs = self.idle_rungs_kbps
        if rungs != sorted(set(rungs), reverse=True) or any(
            not self.min_bitrate_kbps <= r < self.max_bitrate_kbps for r in rungs
        ):
            raise ValueError(
                f"video.idle_rungs_kbps ({rungs}) must fall, each at least video.min_bitrate_kbps and under "
                "video.max_bitrate_kbps"
            )
        return self


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
    stats_interval_s: float = Field(0.5, gt=0, description="a stats event this often (data channel, events)")
    event_queue_size: int = Field(64, ge=1, le=10_000, description="events held for one slow events consumer")
    live_chunk_max_kb: int = Field(256, ge=1)
    live_buffer_seconds: float = Field(10.0, gt=0, description="a live feed may run this far ahead of playback")
    drain_timeout_s: float = Field(
        30.0, gt=0, le=3600, description="after SIGTERM, running sessions go on this long at most; new ones get 503"
    )


class LevellingConfig(StrictModel):
    """The features' level normaliser (media_server.speech.leveller): quiet, loud and phone speech alike."""

    enabled: bool = True
    target_energy: float = Field(0.0, ge=-3.0, le=3.0, description="gated mean mel energy, contract units")
    gate_dbfs: float = Field(-45.0, ge=-90.0, le=-10.0, description="quieter columns are not speech")
    relative_gate_db: float = Field(20.0, gt=0, le=60.0, description="... or this far below the speech so far")
    knee_db: float = Field(6.0, gt=0, le=30.0, description="the boost fades in over this much above the gate")
    expansion: float = Field(3.0, ge=1.0, le=10.0, description="below the gate each dB becomes this many")
    max_boost_db: float = Field(50.0, ge=0, le=80.0)
    max_cut_db: float = Field(20.0, ge=0, le=80.0)
    memory_s: float = Field(4.0, gt=0, le=60.0, description="the reference forgets older speech")


class EspeakConfig(StrictModel):
    program: str = Field("espeak-ng", description="the espeak-ng program (a name on PATH or a path)")
    voice: str = Field("en-us", description="the default voice: a language, optionally +variant (en-us+f3)")
    words_per_minute: int = Field(165, ge=80, le=450)


class OpenAiTtsConfig(StrictModel):
    base_url: str | None = Field(None, description="e.g. https://api.openai.com/v1; unset, the engine is off")
    model: str = "tts-1"
    voice: str = "alloy"
    voices: list[str] = Field(
        default_factory=lambda: ["alloy", "ash", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer"],
        min_length=1,
    )
    api_key_env: str | None = Field("OPENAI_API_KEY", description="the environment variable holding the key")
    response_format: Literal["pcm", "wav"] = "pcm"
    pcm_sample_rate: int = Field(24_000, ge=8_000, le=192_000, description="what the server's raw pcm is")
    connect_timeout_s: float = Field(5.0, gt=0, le=120)


class PiperConfig(StrictModel):
    program: str = "piper"
    voices: dict[str, Path] = Field(default_factory=dict, description="voice name -> piper model (.onnx)")
    voice: str | None = Field(None, description="the default voice (default: the first)")


class TtsConfig(StrictModel):
    engine: Literal["espeak-ng", "openai", "piper"] = Field("espeak-ng", description="the default engine")
    max_chars: int = Field(2000, ge=1, le=100_000, description="longest text one say request takes")
    max_streams: int = Field(8, ge=1, le=1000, description="syntheses running at once on this edge")
    first_audio_timeout_s: float = Field(10.0, gt=0, le=300, description="an engine silent this long fails (504)")
    stall_timeout_s: float = Field(5.0, gt=0, le=300, description="... or this long mid-stream: the utterance ends")
    espeak: EspeakConfig = Field(default_factory=EspeakConfig)
    openai: OpenAiTtsConfig = Field(default_factory=OpenAiTtsConfig)
    piper: PiperConfig = Field(default_factory=PiperConfig)

    @model_validator(mode="after")
    def _default_engine_is_configured(self) -> TtsConfig:
        if self.engine == "openai" and not self.openai.base_url:
            raise ValueError("tts.engine is openai, so tts.openai.base_url must be set")
        if self.engine == "piper" and not self.piper.voices:
            raise ValueError("tts.engine is piper, so tts.piper.voices must name a model")
        if self.openai.voice not in self.openai.voices:
            raise ValueError(f"tts.openai.voice '{self.openai.voice}' is not one of tts.openai.voices")
        if self.piper.voice is not None and self.piper.voice not in self.piper.voices:
            raise ValueError(f"tts.piper.voice '{self.piper.voice}' is not one of tts.piper.voices")
        return self


class EdgeConfig(StrictModel):
    http: HttpConfig = Field(default_factory=HttpConfig)
    sessions: SessionConfig = Field(default_factory=SessionConfig)
    video: VideoConfig = Field(default_factory=VideoConfig)
    inference: InferenceTargetsConfig = Field(default_factory=InferenceTargetsConfig)
    avatars: AvatarsConfig = Field(default_factory=AvatarsConfig)
    audio_encoder: Path | None = Field(None, description="ONNX audio encoder [B,1,80,16]->[B,512]; default built-in")
    levelling: LevellingConfig = Field(default_factory=LevellingConfig)
    tts: TtsConfig = Field(default_factory=TtsConfig)


ENV_PREFIX = "LIPSTREAM_EDGE_"


def load_edge_config(path: Path | None, overrides: dict[str, object] | None = None) -> EdgeConfig:
    return load_config(EdgeConfig, path, ENV_PREFIX, overrides)
