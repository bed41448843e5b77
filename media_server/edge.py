"""The edge: avatars, features, inference client, and the live sessions on this machine.

`create_session` is where WebRTC meets the media core: the transceivers are
made first (aiortc as answerer binds the offer's m-lines to existing ones),
H.264 is forced by codec preference before the offer is applied, then the
answer is produced with all ICE candidates (no trickle needed).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCRtpSender, RTCSessionDescription, sdp

from inference_service.builtin_models import BUILTIN_MODELS
from inference_service.client import InferenceClient
from lipstream.paths import cache_dir
from media_server.avatar import DEFAULT_AVATAR, MANIFEST
from media_server.config import AvatarsConfig, InferenceTargetsConfig, SessionConfig, VideoConfig
from media_server.default_avatar import ensure_default_avatar
from media_server.features import FeatureExtractor
from media_server.frame_store import FrameStore, LoadedAvatar
from media_server.microphone import echo_microphone
from media_server.session import Session
from media_server.stats import EdgeMetrics
from media_server.tracks import AvatarVideoTrack, SpeechAudioTrack, route_keyframe_requests
from protos.lipsync.v1 import lipsync_pb2 as pb

log = logging.getLogger(__name__)

SESSION_FPS = 25  # the A/V clock, the audio features and the pts all assume 25 fps
SPEECH_WORKERS = 2
AVATAR_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class AvatarNotFound(LookupError):
    pass


class AvatarUnusable(ValueError):
    """The avatar exists but sessions cannot play it (e.g. not 25 fps)."""


class BadOffer(ValueError):
    pass


class SessionLimit(RuntimeError):
    pass


@dataclass
class EdgeSettings:
    sessions: SessionConfig
    video: VideoConfig
    inference: InferenceTargetsConfig
    avatars: AvatarsConfig
    ice_servers: list[str]
    audio_encoder: Path | None = None


class Edge:
    def __init__(self, settings: EdgeSettings) -> None:
        self.settings = settings
        self.store = FrameStore(settings.avatars.memory_budget_mb)
        self.extractor = FeatureExtractor(settings.audio_encoder)
        inference = settings.inference
        self.inference = InferenceClient(inference.targets, max_message_mb=inference.max_message_mb,
                                         backoff_initial_s=inference.backoff_initial_s,
                                         backoff_max_s=inference.backoff_max_s)
        self.sessions: dict[str, Session] = {}
        self._starting = 0  # sessions being negotiated: they count against the limit too
        # Speech decoding and features for every session: bounded, and apart from the
        # default executor that aiortc uses to encode every session's audio.
        self.speech_executor = ThreadPoolExecutor(SPEECH_WORKERS, thread_name_prefix="speech")
        self._peers: dict[str, RTCPeerConnection] = {}
        self._lookahead: dict[str, int] = {}
        self.metrics = EdgeMetrics()

    # -- avatars and models ---------------------------------------------------
    def avatar_root(self) -> Path:
        return self.settings.avatars.directory or cache_dir() / "avatars"

    def avatar_names(self) -> list[str]:
        root = self.avatar_root()
        names = {DEFAULT_AVATAR}
        if root.is_dir():
            names.update(p.name for p in root.iterdir() if (p / MANIFEST).is_file())
        return sorted(names)

    async def load_avatar(self, name: str) -> LoadedAvatar:
        if not AVATAR_NAME.match(name):
            raise AvatarNotFound(f"no such avatar '{name}'")
        loop = asyncio.get_running_loop()
        if name == DEFAULT_AVATAR and not (self.avatar_root() / name / MANIFEST).is_file():
            directory = await loop.run_in_executor(None, ensure_default_avatar)
        else:
            directory = self.avatar_root() / name
            if not (directory / MANIFEST).is_file():
                raise AvatarNotFound(f"no such avatar '{name}'")
        avatar = await loop.run_in_executor(None, self.store.get, directory)
        if avatar.fps != SESSION_FPS:
            raise AvatarUnusable(f"avatar '{name}' is {avatar.fps} fps; sessions run at {SESSION_FPS} fps "
                                 f"(prepare it with --fps {SESSION_FPS})")
        return avatar

    async def lookahead_frames(self, model_id: str) -> int:
        """The model's declared audio look-ahead, from the inference tier (cached)."""
        if model_id in self._lookahead:
            return self._lookahead[model_id]
        try:
            reply = await self.inference.stub.ListModels(pb.ListModelsRequest(), timeout=2)
            for model in reply.models:
                self._lookahead[model.id] = model.layout.lookahead_frames
        except Exception as exc:  # noqa: BLE001 - the inference tier may be down; sessions still start
            log.warning("cannot ask the inference tier for model layouts: %s", exc)
        if model_id in self._lookahead:
            return self._lookahead[model_id]
        builtin = BUILTIN_MODELS.get(model_id)
        return builtin.lookahead_frames if builtin else 1

    # -- sessions -----------------------------------------------------------------
    async def create_session(self, offer_sdp: str, avatar_name: str) -> tuple[Session, str]:
        limit = self.settings.sessions.max_sessions
        if len(self.sessions) + self._starting >= limit:
            raise SessionLimit(f"server full: {limit} sessions")
        if "m=" not in offer_sdp or not offer_sdp.lstrip().startswith("v="):
            raise BadOffer("the offer is not an SDP description")
        self._starting += 1
        try:
            return await self._start_session(offer_sdp, avatar_name)
        finally:
            self._starting -= 1

    async def _start_session(self, offer_sdp: str, avatar_name: str) -> tuple[Session, str]:
        avatar = await self.load_avatar(avatar_name)
        session_id = secrets.token_urlsafe(16)
        session = Session(
            session_id, secrets.token_urlsafe(24), avatar, avatar.model,
            await self.lookahead_frames(avatar.model), self.inference, self.extractor,
            self.settings.sessions, self.settings.video, self.metrics, self.speech_executor,
        )
        servers = [RTCIceServer(url) for url in self.settings.ice_servers]
        pc = RTCPeerConnection(RTCConfiguration(iceServers=servers))
        try:
            answer = await self._negotiate(pc, session, offer_sdp)
        except Exception:
            await pc.close()
            await session.close()
            raise
        self.sessions[session_id] = session
        self._peers[session_id] = pc
        self.metrics.sessions_created.inc()
        self.metrics.sessions.set(len(self.sessions))
        session.spawn(self._watch_connection(session, pc), "connect-timeout")
        log.info("session %s: avatar %s, model %s", session_id[:8], avatar.name, avatar.model)
        return session, answer

    async def _negotiate(self, pc: RTCPeerConnection, session: Session, offer_sdp: str) -> str:
        try:
            kinds = [media.kind for media in sdp.SessionDescription.parse(offer_sdp).media]
        except Exception as exc:  # noqa: BLE001 - the SDP parser raises many types
            raise BadOffer(f"the offer is not valid SDP: {exc}") from exc
        if "video" not in kinds:
            raise BadOffer("the offer has no video m-line")
        # Transceivers first, so the offer's m-lines bind to them; one only for kinds the
        # offer has (an unmatched transceiver breaks aiortc's answer).
        video = pc.addTransceiver(AvatarVideoTrack(session), direction="sendonly")
        h264 = [c for c in RTCRtpSender.getCapabilities("video").codecs
                if c.mimeType.lower() in ("video/h264", "video/rtx")]
        video.setCodecPreferences(h264)
        if "audio" in kinds:
            pc.addTransceiver(SpeechAudioTrack(session), direction="sendrecv")
        route_keyframe_requests(video.sender, session)

        @pc.on("track")
        def on_track(track) -> None:
            if track.kind == "audio":
                session.spawn(echo_microphone(session, track), "microphone")

        @pc.on("datachannel")
        def on_datachannel(channel) -> None:
            if channel.label == "stats":
                session.spawn(self._send_stats(session, channel), "stats")

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                await self.close_session(session.id)

        try:
            await pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
        except Exception as exc:  # noqa: BLE001 - aiortc raises many types for bad SDP
            raise BadOffer(f"cannot use the offer: {exc}") from exc
        if not video.sender or not any(c.mimeType.lower() == "video/h264" for c in (video._codecs or [])):
            raise BadOffer("the offer does not accept H.264 video")
        answer = await pc.createAnswer()
        await pc.setLocalDescription(answer)
        return pc.localDescription.sdp

    def peer(self, session_id: str) -> RTCPeerConnection:
        return self._peers[session_id]

    async def _watch_connection(self, session: Session, pc: RTCPeerConnection) -> None:
        connected = asyncio.Event()

        @pc.on("connectionstatechange")
        def on_state() -> None:
            if pc.connectionState == "connected":
                connected.set()

        try:
            await asyncio.wait_for(connected.wait(), self.settings.sessions.connect_timeout_s)
        except TimeoutError:
            log.info("session %s: no connection within %.0f s", session.id[:8],
                     self.settings.sessions.connect_timeout_s)
            asyncio.get_running_loop().create_task(self.close_session(session.id))

    async def _send_stats(self, session: Session, channel) -> None:
        def send(message: dict) -> None:
            if channel.readyState == "open":
                channel.send(json.dumps(message))

        session.on_event = send
        interval = self.settings.sessions.stats_interval_s
        while True:
            await asyncio.sleep(interval)
            send({"type": "stats", **session.state()})

    async def close_session(self, session_id: str) -> bool:
        session = self.sessions.pop(session_id, None)
        pc = self._peers.pop(session_id, None)
        if session is None:
            return False
        self.metrics.sessions.set(len(self.sessions))
        log.info("session %s closed", session_id[:8])
        if pc is not None:  # first, so the tracks stop pulling frames from the session
            await pc.close()
        await session.close()
        return True

    async def close(self) -> None:
        await asyncio.gather(*(self.close_session(sid) for sid in list(self.sessions)))
        await self.inference.close()
        self.speech_executor.shutdown(wait=False, cancel_futures=True)

