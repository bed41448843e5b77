"""One viewer's session: a thin facade over its clock, speech, mouth pipeline, video and audio out.

Video frame n is due at t0 + n/25 s (pts n * 3600 at 90 kHz); audio chunk k at
t0 + k * 20 ms (pts k * 960 at 48 kHz), both from one clock. Inference for a speaking
frame is requested ahead of its deadline (`mouth`); a result that misses the deadline
is replaced by the idle frame and counted late, so the stream never stalls or bursts.
Both tracks hand aiortc finished packets: while the session is idle they are the
avatar's shared idle loop (`video_out`) and shared silence (`audio_out`), so an idle
session encodes nothing. The viewer's link (`link`, fed by its RTCP feedback) sets the
video's bitrate and, on a link too slow for every frame, which frames are sent: the others
are passed over on the same clock, so audio never waits and the lips stay on time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, NamedTuple

import av
from aiortc.mediastreams import MediaStreamError

from inference_service.client import InferenceClient
from lipstream.timebase import CHUNKS_PER_FRAME, FRAME_SECONDS
from media_server.avatars.store import LoadedAvatar
from media_server.config import SessionConfig, VideoConfig
from media_server.load import LoadMeter
from media_server.metrics import EdgeMetrics
from media_server.network.link import ViewerLink
from media_server.session import saying
from media_server.session.audio_out import AudioOut
from media_server.session.clock import AvClock
from media_server.session.events import STATS, Event, EventFanOut
from media_server.session.mouth import MouthPipeline
from media_server.session.renderer import Renderer
from media_server.session.speech_input import SpeechInput, SpeechInterrupted
from media_server.session.stats import SessionStats
from media_server.session.video_out import VideoOut
from media_server.speech.audio import PcmFormat
from media_server.speech.features import FeatureExtractor
from media_server.speech.live import LiveFeed
from media_server.speech.timeline import SpeechEvent, SpeechTimeline
from media_server.speech.utterance import Utterance
from media_server.tts.service import TextToSpeech
from media_server.video.idle_loop import IdleLoops


@dataclass(frozen=True)
class SessionModel:
    """The lip-sync model a session's avatar uses, as the inference tier declares it."""

    id: str
    lookahead_frames: int


@dataclass(frozen=True)
class SessionServices:
    """What the edge shares with every session."""

    inference: InferenceClient
    extractor: FeatureExtractor
    speech_executor: Executor
    sessions: SessionConfig
    video: VideoConfig
    metrics: EdgeMetrics | None = None
    load: LoadMeter | None = None
    idle_loops: IdleLoops | None = None


def _ms(frames: int) -> float:
    return round(frames * FRAME_SECONDS * 1000, 1)


def speech_event(event: SpeechEvent) -> Event:
    """A timeline event as apps and the page receive it (times in ms from the session's start)."""
    message: Event = {
        "type": event.kind,
        "utterance": event.utterance,
        "frame": event.frame,
        "pts_ms": _ms(event.frame),
    }
    if event.kind == "speech_start":
        message.update(queued_ms=_ms(event.queued_frames), lead_ms=_ms(event.lead_frames))
    else:
        message.update(interrupted=event.interrupted, played_ms=_ms(event.played_frames))
    return message


class Said(NamedTuple):
    utterance: Utterance
    engine: str
    voice: str


class Session:
    def __init__(
        self, session_id: str, token: str, avatar: LoadedAvatar, model: SessionModel, services: SessionServices
    ) -> None:
        config = services.sessions
        self.id = session_id
        self.token = token
        self.avatar = avatar
        self.model = model
        self.stats = SessionStats(services.metrics)
        self.events = EventFanOut()
        self.closed = False
        self.ended = asyncio.Event()
        self._timeline = SpeechTimeline(config.pipeline_frames, config.max_queued_utterances)
        self._clock = AvClock()
        stream = services.inference.open_stream(max_inflight=4 * (config.pipeline_frames + 1))
        self._mouth = MouthPipeline(
            avatar, model.id, stream, self._timeline, self._clock, self.stats, config.pipeline_frames
        )
        self.link = ViewerLink(services.video, avatar.width, avatar.height)
        self._renderer = Renderer(avatar, services.video, self.stats, f"session-{session_id[:8]}")
        self._video = VideoOut(avatar, self._renderer, services.idle_loops, self.link, self.stats)
        self._audio = AudioOut()
        self._speech = SpeechInput(
            self._timeline,
            services.extractor,
            model.lookahead_frames,
            services.speech_executor,
            config,
            self.stats,
            services.metrics,
        )
        self._load = services.load
        self._tasks: set[asyncio.Task[Any]] = set()
        self.spawn(self._publish_stats(config.stats_interval_s), "stats")

    @property
    def speaking(self) -> bool:
        return self._timeline.speaking

    def queued_seconds(self) -> float:
        return self._timeline.queued_seconds()

    # -- the tracks pull from here --------------------------------------------------------
    async def next_video_packet(self) -> av.Packet:
        if self.closed:
            raise MediaStreamError
        n, skipped = self._next_frame_sent()
        self._mouth.submit_ahead(n, self.link.rate.frame_step)
        mouth = await self._mouth.mouth_for(n)
        packet = await self._video.packet(n, self._mouth.background(n), mouth)
        due = self._clock.frame_due(n)
        sent_late = self._clock.seconds_until(due) < -FRAME_SECONDS
        await self._clock.sleep_until(due)
        self.stats.frame_sent(asyncio.get_running_loop().time())
        if self._load is not None:
            self._load.frames(sent=1 + skipped, late=skipped + (sent_late or mouth.late))
        return packet

    def _next_frame_sent(self) -> tuple[int, int]:
        """The next frame the video sends, and how many the clock skipped on the way (frames passed over
        to fit the viewer's link are counted apart: they are not late)."""
        skipped = passed = 0
        while True:
            n, behind = self._clock.take_frame()
            skipped += behind
            self._timeline.advance_to(n)
            self._forward_events()
            if self._video.sends(n, idle=self._timeline.plan(n) is None):
                break
            passed += 1
        if skipped:
            self.stats.skipped(skipped)
        if passed:
            self.stats.passed_over(passed)
        if skipped or passed:
            self._mouth.drop_before(n)
        return n, skipped

    async def next_audio_packet(self) -> av.Packet:
        """The next chunk that is sent (most silent ones are not: `audio_out`), at its time."""
        while True:
            if self.closed:
                raise MediaStreamError
            k, _ = self._clock.take_chunk()
            self._timeline.advance_to(k // CHUNKS_PER_FRAME)
            self._forward_events()
            packet = self._audio.packet(k, self._timeline.audio_chunk(k), self._timeline.queued)
            if packet is None:
                await self._sleep_through_silence(self._audio.next_silence)
                continue
            await self._clock.sleep_until(self._clock.chunk_due(k))
            self.link.audio_sent(packet.size)
            return packet

    async def _sleep_through_silence(self, until: int) -> None:
        """Until chunk `until` is due, or speech is queued: nothing is sent in between, so nothing wakes."""
        added = self._timeline.added
        added.clear()
        if not self._timeline.queued:
            queued = asyncio.ensure_future(added.wait())
            try:
                await asyncio.wait({queued}, timeout=max(0.0, self._clock.seconds_until(self._clock.chunk_due(until))))
            finally:
                queued.cancel()
        self._clock.skip_chunks_to(min(until, self._clock.next_chunk_slot()))

    # -- speech -----------------------------------------------------------------------------
    async def speak(self, data: bytes) -> Utterance:
        """An audio file, queued after what is playing (see SpeechInput.speak)."""
        return await self._speech.speak(data)

    def live_feed(self, pcm: PcmFormat) -> LiveFeed:
        return self._speech.live_feed(pcm)

    async def say(self, tts: TextToSpeech, text: str, voice: str | None, engine: str | None) -> Said:
        """Text through a TTS engine, queued as a live utterance that speaks from its first audio on."""
        self._timeline.ensure_room()
        started = await tts.start(text, voice, engine)
        if self.closed:
            await started.synthesis.aclose()
            raise SpeechInterrupted("the session ended before the speech could start")
        feed = self.live_feed(started.synthesis.pcm)
        utterance = await saying.begin(feed, started)
        self.spawn(saying.keep_saying(feed, started, tts, self.events.publish), "say")
        return Said(utterance, started.engine, started.voice)

    def interrupt(self) -> int:
        dropped = self._speech.interrupt()
        self._mouth.drop_all()
        self._forward_events()
        return dropped

    def _forward_events(self) -> None:
        events = self._timeline.events
        while events:
            self.events.publish(speech_event(events.popleft()))

    async def _publish_stats(self, interval_s: float) -> None:
        """The session's state as a `stats` event every `interval_s`, while anyone listens."""
        while True:
            await asyncio.sleep(interval_s)
            if self.events.listening:
                self.events.publish({"type": STATS, **self.state()})

    # -- state and lifecycle -------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        rung = None if self._video.rung_kbps is None else round(self._video.rung_kbps)
        return {
            "session_id": self.id,
            "avatar": self.avatar.name,
            "model": self.model.id,
            "speaking": self.speaking,
            "queued_seconds": round(self._timeline.queued_seconds(), 3),
            "live_stalled_frames": self._timeline.stalled_frames,  # a live feed slower than real time
            "inference_connected": self._mouth.connected,
            "frame": self._clock.next_frame_number,
            "video_source": self._video.source,  # "shared": the avatar's idle loop; "own": this session's encoder
            "stats": {**self.stats.snapshot(), "network": {**self.link.snapshot(), "idle_rung_kbps": rung}},
        }

    def spawn(self, coroutine: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """A task that belongs to this session and ends with it."""
        task = asyncio.create_task(coroutine, name=f"{name}:{self.id[:8]}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.ended.set()
        self._speech.close()
        self._forward_events()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._mouth.close()
        await self._renderer.close()
