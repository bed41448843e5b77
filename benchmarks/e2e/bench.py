"""`lipstream bench e2e`: capacity, latency and A/V sync measured where a user sees them, at real clients.

The inference service and the edge run as child processes, as `lipstream serve`
runs them, so the clients here share neither the edge's event loop nor its GIL
(they do share the machine's cores: their CPU is reported apart). Each client is
a real aiortc peer that receives and decodes the H.264 and Opus tracks. Per video
frame it keeps the arrival time, the RTP timestamp and a small crop around the
mouth; per audio packet, the arrival time, the RTP timestamp and the RMS.

Time axes. Both tracks are paced in real time by the server. Latencies and the
A/V offset use the arrival of a frame's last RTP packet at the client: aiortc's
receiver adds its own buffering after that (it releases a video frame when the
next frame's first packet arrives, and its audio jitter buffer holds 4 packets),
which a browser would not. The offset is also reported on aiortc's decoded output
and on the sender's clock through the RTCP sender reports (what a lip-syncing
player such as a browser aligns on). Each sample sits at the centre of the
interval it stands for: a 40 ms video frame, a 20 ms audio packet.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import io
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import time
import wave
from collections.abc import Awaitable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import cv2
import grpc
import numpy as np
import psutil
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCRtpReceiver, RTCSessionDescription
from aiortc.rtp import RtcpSrPacket

from inference_service.client import wait_until_serving
from lipstream.lifecycle import free_port
from media_server.avatars.bundled import ensure_default_avatar
from media_server.avatars.catalogue import BUNDLED_AVATAR
from media_server.avatars.store import FrameStore, LoadedAvatar
from protos.lipsync.v1 import lipsync_pb2 as pb
from protos.lipsync.v1 import lipsync_pb2_grpc as pb_grpc
from signaling.server import INFERENCE_START_TIMEOUT_S

log = logging.getLogger(__name__)

FPS = 25
FRAME_S = 1.0 / FPS
VIDEO_CLOCK = 90_000
AUDIO_CLOCK = 48_000
PTS_PER_FRAME = VIDEO_CLOCK // FPS
RTP_WRAP = 2**32
NTP_EPOCH_OFFSET_S = 2_208_988_800  # 1900 -> 1970
SPEECH_RATE = 16_000
MODEL = "parametric-mouth"

MAX_LATE_PCT = 1.0
LATE_AT_CLIENT_S = FRAME_S  # a frame this much later than its slot in the paced schedule counts as late
MOVING_MIN = 6.0  # mouth motion (grey levels) above which a frame shows an open mouth ...
MOVING_OVER_IDLE = 2.0  # ... and at least this many times the idle frames' 95th percentile
MAX_LAG_S = 0.2  # A/V offsets searched within +-200 ms
LAG_STEP_S = 0.005

STATS_FRAME_LEAD = 2  # a `stats` message's frame (next to render) less the frame sent last
FIRST_FRAME_ESTIMATES = 5  # `stats` messages (two a second) that fix a stream's first frame number
SETTLE_FRAMES = 25  # idle video each new client receives before a level starts
SUSTAIN_S = 2.0  # the utterance ends on a sustained vowel, which the interrupt cuts
INTERRUPT_INTO_SUSTAIN_FRAMES = 10
TAIL_FRAMES = 25  # frames watched after the interrupt
EDGE_START_TIMEOUT_S = 60.0
FRAME_WAIT_SLACK_S = 10.0  # beyond its due time, a frame that has not arrived fails the run

FULL_SECONDS, QUICK_SECONDS = 20.0, 4.0
FULL_MAX_SESSIONS, QUICK_MAX_SESSIONS = 12, 2
MIN_SECONDS = 2.0


class BenchError(RuntimeError):
    """The bench could not run (a service did not start, a client got no video); the message says which."""


# -- test speech ------------------------------------------------------------------------------
Segment = tuple[float, float]


def random_syllables(seconds: float, seed: int = 0) -> list[Segment]:
    """Voiced bursts of syllable length (120-320 ms) and pauses (80-350 ms), irregular so that
    cross-correlation has a single peak. The first burst starts at 0."""
    rng = np.random.default_rng(seed)
    segments, t = [], 0.0
    while t < seconds:
        end = min(seconds, t + rng.uniform(0.12, 0.32))
        segments.append((t, end))
        t = end + rng.uniform(0.08, 0.35)
    return segments


def synthesize(segments: Sequence[Segment], seconds: float, rate: int = SPEECH_RATE, seed: int = 0) -> np.ndarray:
    """A buzzy voice (a sawtooth with a wandering pitch, plus breath) in `segments`, silence elsewhere, float32."""
    t = np.arange(int(round(seconds * rate))) / rate
    gate = np.zeros(t.size, np.float32)
    for start, end in segments:
        gate[int(start * rate) : int(end * rate)] = 1.0
    ramp = np.hanning(int(0.01 * rate) + 1)
    gate = np.convolve(gate, ramp / ramp.sum(), mode="same")  # 10 ms fades, no clicks
    pitch = 125.0 + 20.0 * np.sin(2 * np.pi * 1.7 * t)
    cycles = np.cumsum(pitch) / rate
    voice = 2.0 * (cycles % 1.0) - 1.0 + np.random.default_rng(seed).normal(0.0, 0.1, t.size)
    return (0.3 * gate * voice).astype(np.float32)


def wav_bytes(samples: np.ndarray, rate: int = SPEECH_RATE) -> bytes:
    """Mono 16-bit WAV, the simplest upload the speech endpoint takes."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes())
    return buffer.getvalue()


@dataclass(frozen=True)
class Utterance:
    """The test utterance: `burst_frames` of syllables, then a sustained vowel the interrupt cuts."""

    audio: bytes
    burst_frames: int
    interrupt_index: int  # utterance frame at whose arrival the client interrupts

    @classmethod
    def build(cls, seconds: float, seed: int = 0) -> Utterance:
        segments = random_syllables(seconds, seed) + [(seconds, seconds + SUSTAIN_S)]
        samples = synthesize(segments, seconds + SUSTAIN_S, seed=seed)
        bursts = int(round(seconds * FPS))
        return cls(wav_bytes(samples), bursts, bursts + INTERRUPT_INTO_SUSTAIN_FRAMES)


# -- mouth motion --------------------------------------------------------------------------------
class MouthMeter:
    """Mean |received luma - the idle frame the server would show| over the mouth of frame n.

    The mouth area is the lower middle of the crop box: rows 50-85 %, columns 30-70 % of its side.
    A client keeps only `crop(luma)`, the box around every frame's mouth area (a few kB a frame).
    """

    def __init__(self, avatar: LoadedAvatar) -> None:
        boxes = []
        for index in avatar.idle_sequence():
            x0, y0, x1, _ = (int(v) for v in avatar.rects[index])
            side = x1 - x0
            boxes.append((y0 + side // 2, y0 + int(0.85 * side), x0 + int(0.3 * side), x0 + int(0.7 * side)))
        top, left = min(b[0] for b in boxes), min(b[2] for b in boxes)
        self._window = (slice(top, max(b[1] for b in boxes)), slice(left, max(b[3] for b in boxes)))
        self._areas = [
            (
                slice(r0 - top, r1 - top),
                slice(c0 - left, c1 - left),
                np.ascontiguousarray(avatar.frames[index][r0:r1, c0:c1]),
            )
            for index, (r0, r1, c0, c1) in zip(avatar.idle_sequence(), boxes, strict=True)
        ]

    def crop(self, luma: np.ndarray) -> np.ndarray:
        return luma[self._window].copy()

    def __call__(self, frame: int, crop: np.ndarray) -> float:
        rows, cols, idle = self._areas[frame % len(self._areas)]
        return float(cv2.absdiff(np.ascontiguousarray(crop[rows, cols]), idle).mean())


# -- clients -------------------------------------------------------------------------------------
@dataclass
class RtpTap:
    """Packet arrivals and sender reports of one received track, which aiortc does not expose.

    aiortc hands decoded frames over with pts = RTP timestamp - that of the first frame
    (unwrapped), so a pts counts ticks from `origin`, the first packet's timestamp.
    """

    clock: int
    packet_arrival: dict[int, float] = field(default_factory=dict)  # RTP ts -> arrival of its last packet
    reports: list[tuple[float, int]] = field(default_factory=list)  # sender reports: (sender clock s, RTP ts)
    origin: int = 0
    newest: int = -1  # ticks from the origin to the newest packet

    def attach(self, receiver: RTCRtpReceiver, loop: asyncio.AbstractEventLoop) -> None:
        on_rtp, on_rtcp = receiver._handle_rtp_packet, receiver._handle_rtcp_packet

        async def rtp(packet, arrival_time_ms: int) -> None:
            if not self.packet_arrival:
                self.origin = packet.timestamp
            self.packet_arrival[packet.timestamp] = loop.time()
            self.newest = max(self.newest, (packet.timestamp - self.origin) % RTP_WRAP)
            await on_rtp(packet, arrival_time_ms)

        async def rtcp(packet) -> None:
            if isinstance(packet, RtcpSrPacket):
                info = packet.sender_info
                self.reports.append((info.ntp_timestamp / 2**32 - NTP_EPOCH_OFFSET_S, info.rtp_timestamp))
            await on_rtcp(packet)

        receiver._handle_rtp_packet = rtp  # type: ignore[method-assign]
        receiver._handle_rtcp_packet = rtcp  # type: ignore[method-assign]

    def arrival(self, pts: int, decoded: float) -> float:
        """When the (last) packet of the frame with this pts arrived; its decoding time if unseen."""
        return self.packet_arrival.get((self.origin + pts) % RTP_WRAP, decoded)

    def sender_origin(self) -> float:
        """Sender clock time of pts 0, the median over all sender reports."""
        if not self.reports:
            raise BenchError("no RTCP sender report arrived")
        return statistics.median(t - (ts - self.origin) % RTP_WRAP / self.clock for t, ts in self.reports)


@dataclass
class Client:
    """A viewer: one WebRTC session, its decoded tracks reduced to what the bench measures.

    Session frame numbers: a session's clock starts with whichever track asks first, so its
    video may start a few frames in. Each `stats` message names the frame the session renders
    next; the frame it sent last is STATS_FRAME_LEAD before, and its packets have reached this
    client. Rarely, a message overtakes a frame, or is written while a frame is being sent: the
    most common difference over the first few messages is the stream's first frame number.
    """

    pc: RTCPeerConnection
    video: RtpTap = field(default_factory=lambda: RtpTap(VIDEO_CLOCK))
    audio: RtpTap = field(default_factory=lambda: RtpTap(AUDIO_CLOCK))
    session_id: str = ""
    token: str = ""
    video_frames: list[tuple[float, int, np.ndarray]] = field(default_factory=list)  # (decoded at, pts, mouth crop)
    audio_frames: list[tuple[float, int, float]] = field(default_factory=list)  # (decoded at, pts, RMS)
    events: list[dict] = field(default_factory=list)
    first_frame_estimates: list[int] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task] = field(default_factory=list)

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def first_frame(self) -> int | None:
        """Session frame number of the stream's pts 0, once enough `stats` messages have said."""
        estimates = self.first_frame_estimates[:FIRST_FRAME_ESTIMATES]
        return statistics.mode(estimates) if len(estimates) == FIRST_FRAME_ESTIMATES else None

    def frame_of(self, pts: int) -> int:
        return (self.first_frame or 0) + pts // PTS_PER_FRAME

    @property
    def last_frame(self) -> int:
        """The latest session frame decoded here; -1 until the frame numbers are known."""
        if self.first_frame is None or not self.video_frames:
            return -1
        return self.frame_of(self.video_frames[-1][1])

    def on_stats(self, message: dict) -> None:
        if self.video.newest >= 0:
            arrived = self.video.newest // PTS_PER_FRAME
            self.first_frame_estimates.append(int(message["frame"]) - STATS_FRAME_LEAD - arrived)
            self.changed.set()

    async def wait_frame(self, frame: int, timeout: float) -> None:
        """Until session frame `frame` (or a later one) has been decoded here."""

        async def arrived() -> None:
            while self.last_frame < frame:
                self.changed.clear()
                await self.changed.wait()

        try:
            await asyncio.wait_for(arrived(), timeout)
        except TimeoutError:
            raise BenchError(
                f"session {self.session_id[:8]}: frame {frame} did not arrive within {timeout:.0f} s "
                f"(last frame {self.last_frame})"
            ) from None

    async def close(self, http: aiohttp.ClientSession, base: str) -> None:
        """Hang up, and end the session on the edge at once (it would notice the hang-up only later)."""
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.pc.close()
        with contextlib.suppress(aiohttp.ClientError):
            async with http.delete(f"{base}/sessions/{self.session_id}", headers=self.auth()):
                pass


async def _receive_video(track: MediaStreamTrack, client: Client, meter: MouthMeter) -> None:
    loop = asyncio.get_running_loop()
    while True:
        frame = await track.recv()
        plane = frame.planes[0]
        luma = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[: plane.height, : plane.width]
        client.video_frames.append((loop.time(), frame.pts, meter.crop(luma)))
        client.changed.set()


async def _receive_audio(track: MediaStreamTrack, client: Client) -> None:
    loop = asyncio.get_running_loop()
    while True:
        frame = await track.recv()
        samples = frame.to_ndarray().astype(np.float32) / 32768.0
        client.audio_frames.append((loop.time(), frame.pts, float(np.sqrt(np.mean(samples * samples)))))


async def connect_client(http: aiohttp.ClientSession, base: str, meter: MouthMeter) -> Client:
    """POST /offer as a browser would (receive-only, with the `stats` data channel)."""
    loop = asyncio.get_running_loop()
    pc = RTCPeerConnection()
    client = Client(pc)
    for kind, tap in (("video", client.video), ("audio", client.audio)):
        tap.attach(pc.addTransceiver(kind, direction="recvonly").receiver, loop)
    channel = pc.createDataChannel("stats")

    @channel.on("message")
    def on_message(message: str) -> None:
        event = json.loads(message)
        if event.get("type") == "stats":
            client.on_stats(event)
        else:
            client.events.append({**event, "arrival": loop.time()})

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        receive = _receive_video(track, client, meter) if track.kind == "video" else _receive_audio(track, client)
        client.tasks.append(asyncio.create_task(receive))

    await pc.setLocalDescription(await pc.createOffer())
    offer = {"sdp": pc.localDescription.sdp, "type": "offer", "avatar": BUNDLED_AVATAR}
    async with http.post(f"{base}/offer", json=offer) as response:
        if response.status != 200:
            await pc.close()
            raise BenchError(f"POST /offer answered {response.status}: {await response.text()}")
        body = await response.json()
    client.session_id, client.token = body["session_id"], body["token"]
    await pc.setRemoteDescription(RTCSessionDescription(body["sdp"], "answer"))
    return client


# -- services ------------------------------------------------------------------------------------
def _child_log_level() -> str:
    """The children log warnings and errors only, unless this process logs at DEBUG."""
    level = logging.getLogger().getEffectiveLevel()
    return logging.getLevelName(level if level <= logging.DEBUG else max(level, logging.WARNING))


class Services:
    """`lipstream serve`, taken apart: the inference service and the edge, each in its own process."""

    def __init__(self, max_sessions: int) -> None:
        self.max_sessions = max_sessions
        self.inference_target = ""
        self.url = ""
        self._children: dict[str, subprocess.Popen] = {}

    def _spawn(self, name: str, arguments: list[str], env: dict[str, str]) -> subprocess.Popen:
        command = [sys.executable, "-m", "lipstream.cli", "--log-level", _child_log_level(), *arguments]
        child = subprocess.Popen(command, env={**os.environ, **env})
        self._children[name] = child
        return child

    async def start(self, http: aiohttp.ClientSession) -> None:
        inference_port, edge_port = free_port(), free_port()
        self.inference_target = f"127.0.0.1:{inference_port}"
        self._spawn(
            "inference",
            ["inference", "--host", "127.0.0.1", "--port", str(inference_port)],
            {
                "LIPSTREAM_INFERENCE_SERVER__METRICS_PORT": "null",
                "LIPSTREAM_INFERENCE_REGISTRY__PRELOAD": f"[{MODEL}]",
            },
        )
        await self._until_started("inference", wait_until_serving(self.inference_target, INFERENCE_START_TIMEOUT_S))
        edge = self._spawn(
            "edge",
            ["edge", "--port", str(edge_port), "--inference", self.inference_target],
            {"LIPSTREAM_EDGE_SESSIONS__MAX_SESSIONS": str(self.max_sessions)},
        )
        self.url = f"http://127.0.0.1:{edge_port}"
        await self._until_started("edge", self._edge_healthy(http, edge))

    async def _until_started(self, name: str, ready: Awaitable[None]) -> None:
        try:
            await ready
        except (TimeoutError, grpc.aio.AioRpcError) as exc:
            raise BenchError(f"the {name} service did not start: {exc}") from exc

    async def _edge_healthy(self, http: aiohttp.ClientSession, edge: subprocess.Popen) -> None:
        """GET /health until it says ok; the child has no other way to say it listens."""
        deadline = time.monotonic() + EDGE_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if edge.poll() is not None:
                raise BenchError(f"the edge exited with code {edge.returncode} during start-up")
            try:
                async with http.get(f"{self.url}/health") as response:
                    if response.status == 200 and (await response.json())["status"] == "ok":
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)
        raise TimeoutError(f"no healthy edge at {self.url} within {EDGE_START_TIMEOUT_S:g} s")

    def pid(self, name: str) -> int:
        return self._children[name].pid

    def stop(self) -> None:
        for child in self._children.values():
            child.terminate()
        for child in self._children.values():
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


async def model_lookahead(target: str, model: str) -> int:
    """The model's declared audio look-ahead, as the inference tier reports it."""
    async with grpc.aio.insecure_channel(target) as channel:
        reply = await pb_grpc.LipSyncStub(channel).ListModels(pb.ListModelsRequest(), timeout=10)
    for entry in reply.models:
        if entry.id == model:
            return int(entry.layout.lookahead_frames)
    raise BenchError(f"the inference service does not list model '{model}'")


class ProcessMeter:
    """CPU seconds and resident memory of the edge, the inference service and this (client) process."""

    def __init__(self, pids: dict[str, int]) -> None:

        self._processes = {name: psutil.Process(pid) for name, pid in pids.items()}

    def cpu_seconds(self) -> dict[str, float]:
        return {name: sum(p.cpu_times()[:2]) for name, p in self._processes.items()}

    def rss_mb(self, name: str) -> float:
        return self._processes[name].memory_info().rss / 2**20


async def settle_rss_mb(meter: ProcessMeter, name: str, tolerance_mb: float = 1.0, timeout_s: float = 15.0) -> float:
    """RSS once it stops moving (the edge loads the default avatar in the background at start-up)."""
    deadline = time.monotonic() + timeout_s
    previous = meter.rss_mb(name)
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        current = meter.rss_mb(name)
        if abs(current - previous) < tolerance_mb:
            return current
        previous = current
    return previous


# -- one session's run -----------------------------------------------------------------------------
@dataclass
class SessionRun:
    """The times the bench acted at (client clock) and the server's counters around them."""

    client: Client
    sent: float
    accepted: float
    start: int  # session frame of the utterance's first frame
    interrupted: float
    late_frames: int
    speaking_frames: int
    stages_ms: dict[str, float]  # the server's medians over its last frames: inference, composite, encode


async def _session_state(http: aiohttp.ClientSession, base: str, client: Client) -> dict:
    async with http.get(f"{base}/sessions/{client.session_id}", headers=client.auth()) as response:
        if response.status != 200:
            raise BenchError(f"GET /sessions answered {response.status}: {await response.text()}")
        return await response.json()


async def speak_and_interrupt(
    http: aiohttp.ClientSession, base: str, client: Client, utterance: Utterance, delays_s: tuple[float, float]
) -> SessionRun:
    """Upload the utterance, interrupt it in its sustained vowel, watch the return to idle.

    `delays_s` are waited before the upload and before the interrupt: random fractions of a
    frame, so that requests do not always land just after a frame, as a user's would not.
    """
    loop = asyncio.get_running_loop()
    await asyncio.sleep(delays_s[0])
    before = (await _session_state(http, base, client))["stats"]
    sent = loop.time()
    async with http.post(
        f"{base}/sessions/{client.session_id}/speech",
        data=utterance.audio,
        headers={**client.auth(), "Content-Type": "audio/wav"},
    ) as response:
        if response.status != 202:
            raise BenchError(f"POST speech answered {response.status}: {await response.text()}")
        accepted = loop.time()
        start = int((await response.json())["starts_at_frame"])
    wait_s = (utterance.interrupt_index + start - client.last_frame) * FRAME_S + FRAME_WAIT_SLACK_S
    await client.wait_frame(start + utterance.interrupt_index, wait_s)
    await asyncio.sleep(delays_s[1])
    interrupted = loop.time()
    async with http.post(f"{base}/sessions/{client.session_id}/interrupt", headers=client.auth()) as response:
        if response.status != 200:
            raise BenchError(f"POST interrupt answered {response.status}: {await response.text()}")
    await client.wait_frame(client.last_frame + TAIL_FRAMES, TAIL_FRAMES * FRAME_S + FRAME_WAIT_SLACK_S)
    after = (await _session_state(http, base, client))["stats"]
    late, speaking = (after[key] - before[key] for key in ("late_frames", "speaking_frames"))
    return SessionRun(client, sent, accepted, start, interrupted, late, speaking, after["stages_ms"])


# -- analysis ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VideoSeries:
    """One client's received frames as arrays: session frame number, decoded and packet arrival, motion, pts."""

    frame: np.ndarray
    decoded: np.ndarray
    packet: np.ndarray
    motion: np.ndarray
    pts: np.ndarray

    @classmethod
    def of(cls, client: Client, meter: MouthMeter) -> VideoSeries:
        rows = [
            (client.frame_of(pts), decoded, client.video.arrival(pts, decoded), meter(client.frame_of(pts), crop), pts)
            for decoded, pts, crop in client.video_frames
        ]
        frame, decoded, packet, motion, pts = (np.array(column) for column in zip(*rows, strict=True))
        return cls(frame.astype(np.int64), decoded, packet, motion, pts)

    def between(self, first: int, stop: int) -> np.ndarray:
        return (self.frame >= first) & (self.frame < stop)


def moving_threshold(series: VideoSeries, start: int) -> float:
    """Open mouth: well above the codec noise of the idle frames just before the speech."""
    idle = series.motion[series.between(start - 2 * FPS, start - 2)]
    noise = float(np.percentile(idle, 95)) if idle.size else 0.0
    return max(MOVING_MIN, MOVING_OVER_IDLE * noise)


def losses(series: VideoSeries, first: int, stop: int) -> dict[str, int]:
    """Frames of [first, stop) that never arrived, or arrived more than a frame after their slot.

    The slot of frame n is its paced send time n/25 s plus the session's median transit delay,
    so a player buffering one frame would have shown every frame that is not late.
    """
    inside = series.between(first, stop)
    frames = np.unique(series.frame[inside])
    transit = series.packet[inside] - series.frame[inside] * FRAME_S
    late = int(np.count_nonzero(transit - np.median(transit) > LATE_AT_CLIENT_S)) if transit.size else 0
    return {"expected": stop - first, "missing": stop - first - frames.size, "late_at_client": late}


def first_moving(series: VideoSeries, after: float, threshold: float) -> int | None:
    """Index of the first frame that arrived after `after` and shows an open mouth."""
    candidates = np.flatnonzero((series.packet > after) & (series.motion > threshold))
    return int(candidates[0]) if candidates.size else None


def interrupt_to_idle(series: VideoSeries, interrupted: float, threshold: float) -> dict[str, Any]:
    """Frames (at 25 fps) from the interrupt request to the arrival of the first frame after the last open mouth.

    None when the mouth was not open as the interrupt went out (a late frame shown idle): nothing to measure.
    """
    after = np.flatnonzero(series.packet > interrupted)
    moving = after[series.motion[after] > threshold]
    idle = after[0] if moving.size == 0 else moving[-1] + 1
    was_moving = bool(after.size and after[0] > 0 and series.motion[after[0] - 1] > threshold)
    measured = was_moving and idle < series.packet.size
    frames = round((series.packet[idle] - interrupted) * FPS, 2) if measured else None
    return {"frames": frames, "moving_frames_after": int(moving.size), "was_moving": was_moving}


def lag_seconds(video_t: np.ndarray, video: np.ndarray, audio_t: np.ndarray, audio: np.ndarray) -> float:
    """Delay of `video` behind `audio` (positive: video late), at the peak of their correlation.

    Both are interpolated onto the video's times shifted by each candidate lag (5 ms steps within
    +-200 ms); the peak is refined by a parabola through its neighbours.
    """
    order = np.argsort(audio_t)
    audio_t, audio = audio_t[order], audio[order]
    keep = (video_t > audio_t[0] + MAX_LAG_S) & (video_t < audio_t[-1] - MAX_LAG_S)
    grid, values = video_t[keep], video[keep]
    lags = np.arange(-MAX_LAG_S, MAX_LAG_S + LAG_STEP_S / 2, LAG_STEP_S)
    shifted = np.interp(grid[None, :] - lags[:, None], audio_t, audio)
    shifted = (shifted - shifted.mean(axis=1, keepdims=True)) / (shifted.std(axis=1, keepdims=True) + 1e-12)
    scores = shifted @ ((values - values.mean()) / (values.std() + 1e-12)) / max(1, values.size)
    peak = int(np.argmax(scores))
    if 0 < peak < lags.size - 1:
        below, at, above = scores[peak - 1 : peak + 2]
        curvature = below - 2 * at + above
        if curvature < 0:
            return float(lags[peak] + LAG_STEP_S * 0.5 * (below - above) / curvature)
    return float(lags[peak])


def av_offsets_ms(run: SessionRun, series: VideoSeries, burst_frames: int) -> dict[str, float]:
    """A/V offset over the syllables on each time axis (see the module docstring)."""
    client = run.client
    inside = series.between(run.start, run.start + burst_frames)
    audio_rows = np.array(
        [(decoded, client.audio.arrival(pts, decoded), pts, rms) for decoded, pts, rms in client.audio_frames]
    )
    a_decoded, a_packet, a_pts, rms = audio_rows.T
    audio_centre, video_centre = 0.5 * 960 / AUDIO_CLOCK, 0.5 * FRAME_S
    motion = series.motion[inside]
    axes = {
        "packet_arrival": (series.packet[inside], a_packet),
        "decoded_arrival": (series.decoded[inside], a_decoded),
        "rtp_sender_reports": (
            client.video.sender_origin() + series.pts[inside] / VIDEO_CLOCK,
            client.audio.sender_origin() + a_pts / AUDIO_CLOCK,
        ),
    }
    return {
        name: round(1000 * lag_seconds(video_t + video_centre, motion, audio_t + audio_centre, rms), 2)
        for name, (video_t, audio_t) in axes.items()
    }


def analyse(run: SessionRun, utterance: Utterance, meter: MouthMeter) -> dict[str, Any]:
    series = VideoSeries.of(run.client, meter)
    threshold = moving_threshold(series, run.start)
    lips = first_moving(series, run.accepted, threshold)
    if lips is None:
        raise BenchError(f"session {run.client.session_id[:8]}: the mouth never moved after the speech request")
    starts = [e["frame"] for e in run.client.events if e["type"] == "speech_start" and e["frame"] >= run.start]
    counted = losses(series, run.start, run.start + utterance.interrupt_index)
    return {
        "session": run.client.session_id[:8],
        "moving_threshold": round(threshold, 2),
        "speech_to_lips_frames": round((series.packet[lips] - run.accepted) * FPS, 2),
        "speech_to_lips_from_request_frames": round((series.packet[lips] - run.sent) * FPS, 2),
        "speech_to_lips_decoded_frames": round((series.decoded[lips] - run.accepted) * FPS, 2),
        "speech_start_event_frame": starts[0] if starts else None,
        "first_moving_frame": int(series.frame[lips]),
        "scheduled_start_frame": run.start,
        "interrupt": interrupt_to_idle(series, run.interrupted, threshold),
        "av_offset_ms": av_offsets_ms(run, series, utterance.burst_frames),
        "server_late_frames": run.late_frames,
        "server_speaking_frames": run.speaking_frames,
        "server_stages_ms": run.stages_ms,
        **counted,
    }


def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(float(statistics.median(present)), 2) if present else None


# -- levels ------------------------------------------------------------------------------------------
FRAME_COUNTS = ("expected", "missing", "late_at_client", "server_late_frames", "server_speaking_frames")


async def connect_clients(
    http: aiohttp.ClientSession, base: str, clients: list[Client], count: int, mouth: MouthMeter
) -> None:
    """Up to `count` clients, every one receiving video with known frame numbers."""
    while len(clients) < count:
        clients.append(await connect_client(http, base, mouth))
    await asyncio.gather(
        *(c.wait_frame(c.last_frame + SETTLE_FRAMES, SETTLE_FRAMES * FRAME_S + FRAME_WAIT_SLACK_S) for c in clients)
    )


async def idle_memory(
    http: aiohttp.ClientSession,
    services: Services,
    meter: ProcessMeter,
    clients: list[Client],
    most: int,
    mouth: MouthMeter,
) -> dict[str, Any]:
    """Edge RSS with 0, 1 and `most` idle sessions, before any speech: an utterance's feature buffers,
    once freed, stay in the allocator's heap and would be counted against the sessions that follow."""
    rss = {0: await settle_rss_mb(meter, "edge")}
    for count in sorted({1, most}):
        await connect_clients(http, services.url, clients, count, mouth)
        rss[count] = await settle_rss_mb(meter, "edge")
    per_session = (rss[most] - rss[1]) / (most - 1) if most > 1 else rss[1] - rss[0]
    return {
        "base": round(rss[0], 1),
        "per_session": round(per_session, 2),
        "idle_sessions": {str(count): round(value, 1) for count, value in rss.items()},
    }


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No garbage collection in this process while it measures: a pause would delay every
    client's packets at once and look like a stall of the server."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


async def run_level(
    http: aiohttp.ClientSession,
    services: Services,
    meter: ProcessMeter,
    clients: list[Client],
    sessions: int,
    utterance: Utterance,
    mouth: MouthMeter,
) -> dict[str, Any]:
    """Bring the clients up to `sessions`, then all of them speak at once (staggered within a second)."""
    await connect_clients(http, services.url, clients, sessions, mouth)
    rng = np.random.default_rng(sessions)
    delays = [(i / sessions + rng.uniform(0, FRAME_S), rng.uniform(0, FRAME_S)) for i in range(sessions)]
    rss_before = meter.rss_mb("edge")
    cpu_before, wall_before = meter.cpu_seconds(), time.monotonic()
    with collector_paused():
        runs = await asyncio.gather(
            *(
                speak_and_interrupt(http, services.url, c, utterance, delay)
                for c, delay in zip(clients, delays, strict=True)
            )
        )
    wall = time.monotonic() - wall_before
    cpu = {name: 100 * (spent - cpu_before[name]) / wall for name, spent in meter.cpu_seconds().items()}
    per_session = [analyse(run, utterance, mouth) for run in runs]
    bad = sum(s["server_late_frames"] + s["missing"] + s["late_at_client"] for s in per_session)
    speaking = sum(max(s["server_speaking_frames"], s["expected"]) for s in per_session)
    late_pct = 100 * bad / speaking
    log.info(
        "%d sessions: %.2f %% late or missing, CPU edge %.0f %% inference %.0f %% clients %.0f %%",
        sessions,
        late_pct,
        cpu["edge"],
        cpu["inference"],
        cpu["clients"],
    )
    return {
        "sessions": sessions,
        "late_frame_pct": round(late_pct, 3),
        "holds": late_pct <= MAX_LATE_PCT,
        "frames": {key: sum(s[key] for s in per_session) for key in FRAME_COUNTS},
        "cpu_pct": {name: round(value, 1) for name, value in cpu.items()},
        "server_cpu_pct_per_session": round((cpu["edge"] + cpu["inference"]) / sessions, 1),
        "edge_rss_mb_before": round(rss_before, 1),
        "edge_rss_mb_after": round(meter.rss_mb("edge"), 1),
        "speech_to_lips_frames": _median([s["speech_to_lips_frames"] for s in per_session]),
        "interrupt_to_idle_frames": _median([s["interrupt"]["frames"] for s in per_session]),
        "av_offset_ms": {
            axis: _median([s["av_offset_ms"][axis] for s in per_session]) for axis in per_session[0]["av_offset_ms"]
        },
        "per_session": per_session,
    }


def session_levels(max_sessions: int, quick: bool) -> list[int]:
    """1, 2, 4, 6, 8 ... up to max_sessions (quick: 1 and 2)."""
    levels = [1, 2] if quick else [1, 2, *range(4, max_sessions + 1, 2)]
    levels = [n for n in levels if n <= max_sessions]
    if not quick and levels[-1] != max_sessions:
        levels.append(max_sessions)
    return levels


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on; the load average says how busy the shared machine was."""
    cpuinfo = Path("/proc/cpuinfo")
    models = (
        [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")]
        if cpuinfo.exists()
        else []
    )
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": models[0] if models else platform.processor(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


@dataclass(frozen=True)
class Options:
    quick: bool
    max_sessions: int
    seconds: float


async def run_bench(options: Options) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    levels = session_levels(options.max_sessions, options.quick)
    utterance = Utterance.build(options.seconds)
    directory = await asyncio.get_running_loop().run_in_executor(None, ensure_default_avatar)
    avatar = await asyncio.get_running_loop().run_in_executor(None, FrameStore().get, directory)
    mouth = MouthMeter(avatar)
    services = Services(max_sessions=levels[-1] + 1)
    clients: list[Client] = []
    results: list[dict[str, Any]] = []
    async with aiohttp.ClientSession() as http:
        try:
            await services.start(http)
            lookahead = await model_lookahead(services.inference_target, MODEL)
            meter = ProcessMeter(
                {"edge": services.pid("edge"), "inference": services.pid("inference"), "clients": os.getpid()}
            )
            memory = await idle_memory(http, services, meter, clients, levels[-1], mouth)
            while len(clients) > 1:
                await clients.pop().close(http, services.url)
            for sessions in levels:
                results.append(await run_level(http, services, meter, clients, sessions, utterance, mouth))
                if not results[-1]["holds"]:
                    break
        finally:
            await asyncio.gather(*(c.close(http, services.url) for c in clients), return_exceptions=True)
            services.stop()
    return summarise(options, results, memory, lookahead, avatar, load_before)


def targets(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """DESIGN.md's performance targets next to what was measured."""
    goals = {
        "capacity_sessions": (result["capacity_sessions"], ">=", 6),
        "speech_to_lips_frames": (result["speech_to_lips_frames"], "<=", result["model_lookahead_frames"] + 3),
        "interrupt_to_idle_frames": (result["interrupt_to_idle_frames"], "<=", 2),
        "abs_av_offset_ms": (abs(result["av_offset_ms"]), "<=", 20),
        "rss_mb_per_session": (result["rss_mb"]["per_session"], "<=", 30),
    }
    return {
        name: {"measured": value, "target": f"{sign} {goal}", "met": value >= goal if sign == ">=" else value <= goal}
        for name, (value, sign, goal) in goals.items()
    }


def summarise(
    options: Options,
    levels: list[dict[str, Any]],
    memory: dict[str, Any],
    lookahead: int,
    avatar: LoadedAvatar,
    load_before: float,
) -> dict[str, Any]:
    """Capacity from the last level that held; latency and sync over every session of the levels that held."""
    held = [level for level in levels if level["holds"]]
    sessions = [session for level in (held or levels[:1]) for session in level["per_session"]]
    machine = machine_info()
    machine["load_average_1m"] = {"start": round(load_before, 2), "end": machine["load_average_1m"]}
    result = {
        "bench": "e2e",
        "mode": "quick" if options.quick else "full",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine,
        "avatar": {"name": avatar.name, "width": avatar.width, "height": avatar.height},
        "model": MODEL,
        "model_lookahead_frames": lookahead,
        "speech_seconds": options.seconds,
        "capacity_sessions": held[-1]["sessions"] if held else 0,
        "late_frame_pct": (held[-1] if held else levels[0])["late_frame_pct"],
        "latency_samples": len(sessions),
        "speech_to_lips_frames": _median([s["speech_to_lips_frames"] for s in sessions]),
        "interrupt_to_idle_frames": _median([s["interrupt"]["frames"] for s in sessions]),
        "av_offset_ms": _median([s["av_offset_ms"]["packet_arrival"] for s in sessions]),
        "av_offset_ms_by_axis": {
            axis: _median([s["av_offset_ms"][axis] for s in sessions]) for axis in sessions[0]["av_offset_ms"]
        },
        "rss_mb": memory,
        "levels": levels,
        "definitions": DEFINITIONS,
    }
    result["targets"] = targets(result)
    return result


DEFINITIONS = {
    "arrival": "when the last RTP packet of a frame reached the client; aiortc's receiver adds a frame (it "
    "releases a video frame when the next one's first packet arrives) and its audio jitter buffer",
    "late_frame_pct": "per speaking frame, over every session of a level: the server's late_frames (shown idle, "
    "inference missed its deadline) + frames missing at the client (gaps in RTP timestamps) + "
    "frames arriving more than one frame (40 ms) after their slot (paced send time plus the "
    "session's median transit)",
    "capacity_sessions": "the largest level (1, 2, 4, 6, 8 ... sessions, all speaking) with late_frame_pct <= 1",
    "speech_to_lips_frames": "response to POST /speech received -> arrival of the first frame with an open mouth, "
    "at 25 fps; headline latencies and offsets: median over every session of the levels "
    "that held (latency_samples)",
    "interrupt_to_idle_frames": "POST /interrupt sent -> arrival of the first frame after the last open-mouth frame",
    "av_offset_ms": "lag of the mouth motion behind the audio RMS envelope at the peak of their cross-correlation, "
    "on arrival at the client; positive = video late. av_offset_ms_by_axis adds aiortc's decoded "
    "output and the sender's clock through RTCP sender reports",
    "rss_mb.per_session": "edge RSS growth per extra idle session, between 1 and the most sessions of the run, "
    "measured before any speech",
    "moving": f"mouth motion above max({MOVING_MIN:g}, {MOVING_OVER_IDLE:g} x the idle frames' 95th percentile)",
}


# -- CLI ---------------------------------------------------------------------------------------------
def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--max-sessions must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"--max-sessions must be at least 1, got {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seconds must be a number, got {text!r}") from None
    if not MIN_SECONDS <= value <= 100:
        raise argparse.ArgumentTypeError(f"--seconds must be between {MIN_SECONDS:g} and 100, got {value:g}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("e2e", help="capacity, latency and A/V sync at real WebRTC clients")
    parser.add_argument("--json", type=Path, required=True, metavar="OUT", help="write the results as JSON here")
    parser.add_argument("--quick", action="store_true", help="one and two sessions, short speech (about a minute)")
    parser.add_argument(
        "--max-sessions",
        type=_positive_int,
        metavar="N",
        help=f"most sessions tried (default {FULL_MAX_SESSIONS}; quick {QUICK_MAX_SESSIONS})",
    )
    parser.add_argument(
        "--seconds",
        type=_seconds,
        metavar="S",
        help=f"syllables per session and level (default {FULL_SECONDS:g}; quick {QUICK_SECONDS:g})",
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    options = Options(
        quick=args.quick,
        max_sessions=args.max_sessions or (QUICK_MAX_SESSIONS if args.quick else FULL_MAX_SESSIONS),
        seconds=args.seconds or (QUICK_SECONDS if args.quick else FULL_SECONDS),
    )
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("aioice").setLevel(logging.WARNING)  # a dozen lines per client connection
    try:
        result = asyncio.run(run_bench(options))
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    for level in result["levels"]:
        print(
            f"{level['sessions']:>3} sessions: {level['late_frame_pct']:6.2f} % late, "
            f"speech->lips {level['speech_to_lips_frames']} frames, interrupt->idle "
            f"{level['interrupt_to_idle_frames']} frames, A/V {level['av_offset_ms']['packet_arrival']} ms, "
            f"CPU {level['cpu_pct']}"
        )
    print(
        f"capacity {result['capacity_sessions']} sessions; edge RSS {result['rss_mb']['base']} MB "
        f"+ {result['rss_mb']['per_session']} MB per session"
    )
    return 0
