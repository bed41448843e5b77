"""The edge: avatars, audio features, the inference client, and the live sessions on this machine.

`create_session` is where a WebRTC offer becomes a session: the avatar and its model are
resolved, the session is built, and its peer answers the offer.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

from inference_service.client import InferenceClient
from lipstream.contract import BUILTIN_LOOKAHEAD_FRAMES, FULL_WINDOW_LOOKAHEAD_FRAMES
from lipstream.timebase import VIDEO_FPS
from media_server.avatars.catalogue import AvatarCatalogue
from media_server.avatars.store import FrameStore, LoadedAvatar
from media_server.config import EdgeConfig
from media_server.inference_health import InferenceMonitor
from media_server.load import LoadMeter
from media_server.memory import Reclaimer
from media_server.metrics import EdgeMetrics
from media_server.session.session import Session, SessionModel, SessionServices
from media_server.speech.features import FeatureExtractor
from media_server.tts.service import TextToSpeech
from media_server.video.idle_loop import IdleLoops
from media_server.webrtc.ice_servers import IceServer
from media_server.webrtc.network import PeerNetwork
from media_server.webrtc.peer import SessionPeer, require_sdp

log = logging.getLogger(__name__)

SPEECH_WORKERS = 2


class AvatarUnusable(ValueError):
    """The avatar exists but sessions cannot play it (e.g. not 25 fps)."""


class SessionLimit(RuntimeError):
    pass


class SessionNotFound(LookupError):
    """No such session here: it has ended, or another edge (or a worker since restarted) made it."""

    @classmethod
    def on_edge(cls, public_url: str | None) -> SessionNotFound:
        where = f"this edge ({public_url})" if public_url else "this edge"
        return cls(f"no such session on {where}: a session is served by the edge that made it, at its answer's URLs")


class NewSession(NamedTuple):
    session: Session
    answer_sdp: str
    ice_servers: list[IceServer]  # the session's, for its client too


class Edge:
    """`session_prefix` starts every session id: a worker's index, so a front can route by it."""

    def __init__(self, config: EdgeConfig, session_prefix: str = "") -> None:
        self.config = config
        self.session_prefix = session_prefix
        self.catalogue = AvatarCatalogue(config.avatars.directory)
        self.store = FrameStore(config.avatars.memory_budget_mb)
        targets = config.inference
        self.inference = InferenceClient(
            targets.targets,
            protocol=targets.protocol,
            max_message_mb=targets.max_message_mb,
            backoff_initial_s=targets.backoff_initial_s,
            backoff_max_s=targets.backoff_max_s,
        )
        self.metrics = EdgeMetrics()
        self.load = LoadMeter(config.sessions.overload_window_s)
        self.inference_health = InferenceMonitor(self.inference, targets.health_interval_s)
        self.reclaimer = Reclaimer()
        # Speech decoding and features for every session: bounded, and apart from the
        # default executor (avatars loading, idle loops encoding).
        self._speech_executor = ThreadPoolExecutor(SPEECH_WORKERS, thread_name_prefix="speech")
        self.idle_loops = IdleLoops(config.video)
        self._services = SessionServices(
            inference=self.inference,
            extractor=FeatureExtractor(config.audio_encoder, config.levelling if config.levelling.enabled else None),
            speech_executor=self._speech_executor,
            sessions=config.sessions,
            video=config.video,
            metrics=self.metrics,
            load=self.load,
            idle_loops=self.idle_loops,
        )
        self.tts = TextToSpeech(config.tts)
        self.network = PeerNetwork(config.http)
        self.sessions: dict[str, Session] = {}
        self._peers: dict[str, SessionPeer] = {}
        self._starting = 0  # sessions being negotiated: they count against the limit too
        self.created = 0  # sessions ever created
        self.draining = False  # shutting down: no new sessions
        self._watchers: list[asyncio.Event] = []
        self._lookahead: dict[str, int] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        """Background work that lives as long as the edge: the inference health check."""
        self.inference_health.start()

    def watch(self) -> asyncio.Event:
        """An event set whenever a session starts or ends (the watcher clears it when it has looked)."""
        event = asyncio.Event()
        self._watchers.append(event)
        return event

    def _sessions_changed(self) -> None:
        self.metrics.sessions.set(len(self.sessions))
        for event in self._watchers:
            event.set()

    async def drain(self, timeout_s: float, stop: asyncio.Event) -> None:
        """Refuse new sessions and let the running ones go on until they end, `timeout_s` passes or `stop` is set.

        Whatever still runs then is closed by `close`.
        """
        self.draining = True
        changed = self.watch()
        deadline = asyncio.get_running_loop().time() + timeout_s
        log.info("draining: %d sessions may run for %.0f s more", len(self.sessions), timeout_s)
        stopped = asyncio.ensure_future(stop.wait())
        try:
            while self.sessions and not stop.is_set():
                changed.clear()
                waiting = asyncio.ensure_future(changed.wait())
                remaining = deadline - asyncio.get_running_loop().time()
                done, _ = await asyncio.wait({waiting, stopped}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
                waiting.cancel()
                if not done:
                    log.info("drain timeout: closing %d sessions", len(self.sessions))
                    return
        finally:
            stopped.cancel()
            self._watchers.remove(changed)

    # -- avatars and models ---------------------------------------------------------------
    async def load_avatar(self, name: str) -> LoadedAvatar:
        directory = self.catalogue.directory(name)
        avatar = await asyncio.get_running_loop().run_in_executor(None, self.store.get, directory)
        if avatar.fps != VIDEO_FPS:
            raise AvatarUnusable(
                f"avatar '{name}' is {avatar.fps} fps; sessions run at {VIDEO_FPS} fps "
                f"(prepare it with --fps {VIDEO_FPS})"
            )
        self.idle_loops.get(avatar)  # its shared idle loop starts encoding with its first use
        return avatar

    async def lookahead_frames(self, model_id: str) -> int:
        """The model's declared audio look-ahead, from the inference tier (cached).

        When the tier cannot say (it is down), a bundled model's is known; for any other
        the whole window's reach is assumed: live speech waits longer, but every window is complete.
        """
        if model_id not in self._lookahead:
            try:
                declared = await self.inference.lookahead_frames(model_id)
            except Exception as exc:  # noqa: BLE001 - the inference tier may be down; sessions still start
                log.warning("cannot ask the inference tier for model %s's layout: %s", model_id, exc)
            else:
                if declared is not None:
                    self._lookahead[model_id] = declared
        if model_id in self._lookahead:
            return self._lookahead[model_id]
        return BUILTIN_LOOKAHEAD_FRAMES.get(model_id, FULL_WINDOW_LOOKAHEAD_FRAMES)

    # -- sessions ----------------------------------------------------------------------------
    def session(self, session_id: str) -> Session:
        session = self.sessions.get(session_id)
        if session is None:
            raise SessionNotFound.on_edge(self.config.http.public_url)
        return session

    def peer(self, session_id: str) -> SessionPeer:
        self.session(session_id)
        return self._peers[session_id]

    def _admit(self) -> None:
        """SessionLimit unless one more session fits: in number, while connecting, and in time kept."""
        config = self.config.sessions
        if self.draining:
            raise SessionLimit("draining: this edge is shutting down")
        if len(self.sessions) + self._starting >= config.max_sessions:
            raise SessionLimit(f"server full: {config.max_sessions} sessions")
        connecting = self._starting + sum(not peer.connected for peer in self._peers.values())
        if connecting >= config.max_connecting:
            raise SessionLimit(f"{connecting} sessions are still connecting")
        late = self.load.late_pct()
        if late > config.overload_late_pct:
            raise SessionLimit(f"overloaded: {late:.0f} % of recent frames were late")

    async def create_session(self, offer_sdp: str, avatar_name: str) -> NewSession:
        """A new session for `avatar_name` and the SDP answer to `offer_sdp`."""
        self._admit()
        http = self.config.http
        require_sdp(offer_sdp, http.max_sdp_kb * 1024, http.max_sdp_media)  # fully parsed with the answer
        self._starting += 1
        try:
            return await self._start_session(offer_sdp, avatar_name)
        finally:
            self._starting -= 1

    async def _start_session(self, offer_sdp: str, avatar_name: str) -> NewSession:
        avatar = await self.load_avatar(avatar_name)
        model = SessionModel(avatar.model, await self.lookahead_frames(avatar.model))
        session_id = self.session_prefix + secrets.token_urlsafe(16)
        session = Session(session_id, secrets.token_urlsafe(24), avatar, model, self._services)
        peer = SessionPeer(session, self.network, on_ended=lambda: self.close_session(session_id))
        try:
            answer = await peer.answer(offer_sdp)
        except Exception:
            await peer.close()
            await session.close()
            raise
        self.sessions[session_id] = session
        self._peers[session_id] = peer
        self.created += 1
        self.metrics.sessions_created.inc()
        self._sessions_changed()
        session.spawn(self._end_if_never_connected(peer), "connect-timeout")
        log.info("session %s: avatar %s, model %s", session_id[:8], avatar.name, avatar.model)
        return NewSession(session, answer, peer.ice_servers)

    async def _end_if_never_connected(self, peer: SessionPeer) -> None:
        timeout = self.config.sessions.connect_timeout_s
        if not await peer.wait_connected(timeout):
            log.info("session %s: no connection within %.0f s", peer.session.id[:8], timeout)
            self._start_closing(peer.session.id)  # in a task of its own: closing ends this one

    def _start_closing(self, session_id: str) -> asyncio.Task[None] | None:
        """Take the session out of service now and end it in a task the edge tracks (Edge.close waits for it)."""
        session = self.sessions.pop(session_id, None)
        peer = self._peers.pop(session_id, None)
        if session is None:
            return None
        self._sessions_changed()
        log.info("session %s closed", session_id[:8])
        task = asyncio.get_running_loop().create_task(self._finish(session, peer), name=f"close:{session_id[:8]}")
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
        return task

    async def _finish(self, session: Session, peer: SessionPeer | None) -> None:
        if peer is not None:  # first, so the tracks stop pulling frames from the session
            await peer.close()
        await session.close()
        self.reclaimer.soon()

    async def close_session(self, session_id: str) -> bool:
        """End a session; False if there was none. Whoever asks waits until it is over, but cannot cut it short."""
        task = self._start_closing(session_id)
        if task is None:
            return False
        await asyncio.shield(task)
        return True

    async def close(self) -> None:
        await self.inference_health.close()
        for session_id in list(self.sessions):
            self._start_closing(session_id)
        await asyncio.gather(*self._closing, return_exceptions=True)
        await self.idle_loops.close()
        await self.reclaimer.flush()
        await self.inference.close()
        await self.tts.close()
        self._speech_executor.shutdown(wait=False, cancel_futures=True)
