"""A browser stand-in: one aiortc peer that receives and decodes an edge session's tracks.

Tests and benchmarks both watch a session through it. Per video frame it keeps when it was
decoded, its pts and its luma plane, or only the part a caller asks for (`keep`: a benchmark
with a dozen clients keeps a small crop); per audio frame, the RMS. It also records what
aiortc does not expose: each RTP packet's arrival and the RTCP sender reports (`RtpTap`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

import aiohttp
import av
import numpy as np
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCRtpReceiver, RTCSessionDescription
from aiortc.rtp import AnyRtcpPacket, RtcpSrPacket, RtpPacket

from lipstream.timebase import PLAYBACK_RATE, PTS_PER_FRAME, VIDEO_CLOCK_HZ
from media_server.avatars.catalogue import BUNDLED_AVATAR

RTP_WRAP = 2**32
NTP_EPOCH_OFFSET_S = 2_208_988_800  # 1900 -> 1970
STATS_FRAME_LEAD = 2  # a `stats` message's frame (next to render) less the frame sent last
FIRST_FRAME_ESTIMATES = 5  # `stats` messages (two a second) that fix a stream's first frame number

Keep = Callable[[np.ndarray], np.ndarray]


class SessionHandle(Protocol):
    """What controls a session over HTTP: its edge's base URL, its id and its token's header."""

    @property
    def base(self) -> str: ...

    @property
    def session_id(self) -> str: ...

    def auth(self) -> dict[str, str]: ...


class ViewerError(RuntimeError):
    """The edge refused the viewer, or its stream stopped short; the message says which.

    `status` is the HTTP status of a refused offer (503 at the session limit, ...), else None;
    `retry_after_s` the wait the edge asked for with it, if any.
    """

    def __init__(self, message: str, status: int | None = None, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after_s = retry_after_s


class ReceivedVideo(NamedTuple):
    decoded: float  # event-loop time the decoded frame reached the viewer
    pts: int
    image: np.ndarray  # the luma plane, or what `keep` cut from it


class ReceivedAudio(NamedTuple):
    decoded: float
    pts: int
    rms: float  # of the decoded samples, full scale 1


class SenderReport(NamedTuple):
    sender_s: float  # the sender's wall clock, Unix seconds
    rtp_timestamp: int


@dataclass
class RtpTap:
    """Packet arrivals and sender reports of one received track, which aiortc does not expose.

    aiortc hands decoded frames over with pts = RTP timestamp - that of the first frame
    (unwrapped), so a pts counts ticks from `origin`, the first packet's timestamp.
    """

    clock: int
    forward: bool = True  # False: packets are counted here and never reach aiortc's jitter buffer and decoder
    keep_payloads: bool = False  # True: `payloads` keeps every packet's payload
    payloads: dict[int, dict[int, bytes]] = field(default_factory=dict)  # ticks from the origin -> seq -> payload
    packet_arrival: dict[int, float] = field(default_factory=dict)  # RTP ts -> arrival of its last packet
    reports: list[SenderReport] = field(default_factory=list)
    origin: int = 0
    newest: int = -1  # ticks from the origin to the newest packet
    ssrc: int | None = None  # the sender's stream (a viewer's RTCP feedback names it)

    def attach(self, receiver: RTCRtpReceiver, loop: asyncio.AbstractEventLoop) -> None:
        on_rtp, on_rtcp = receiver._handle_rtp_packet, receiver._handle_rtcp_packet

        async def rtp(packet: RtpPacket, arrival_time_ms: int) -> None:
            if not self.packet_arrival:
                self.origin, self.ssrc = packet.timestamp, packet.ssrc
            self.packet_arrival[packet.timestamp] = loop.time()
            self.newest = max(self.newest, (packet.timestamp - self.origin) % RTP_WRAP)
            if self.keep_payloads:
                ticks = (packet.timestamp - self.origin) % RTP_WRAP
                self.payloads.setdefault(ticks, {})[packet.sequence_number] = packet.payload
            if self.forward:
                await on_rtp(packet, arrival_time_ms)

        async def rtcp(packet: AnyRtcpPacket) -> None:
            if isinstance(packet, RtcpSrPacket):
                info = packet.sender_info
                self.reports.append(SenderReport(info.ntp_timestamp / 2**32 - NTP_EPOCH_OFFSET_S, info.rtp_timestamp))
            await on_rtcp(packet)

        receiver._handle_rtp_packet = rtp  # type: ignore[method-assign]
        receiver._handle_rtcp_packet = rtcp  # type: ignore[method-assign]

    def arrival(self, pts: int, decoded: float) -> float:
        """When the (last) packet of the frame with this pts arrived; its decoding time if unseen."""
        return self.packet_arrival.get((self.origin + pts) % RTP_WRAP, decoded)

    def sender_origin(self) -> float:
        """Sender clock time of pts 0, the median over all sender reports."""
        if not self.reports:
            raise ViewerError("no RTCP sender report arrived")
        return statistics.median(
            report.sender_s - (report.rtp_timestamp - self.origin) % RTP_WRAP / self.clock for report in self.reports
        )


@dataclass
class Viewer:
    """One WebRTC session as a viewer sees it, and the session's control token.

    Session frame numbers: a session's clock starts with whichever track asks first, so its
    video may start a few frames in. Each `stats` message names the frame the session renders
    next; the frame it sent last is STATS_FRAME_LEAD before, and its packets have reached this
    viewer. Rarely, a message overtakes a frame, or is written while a frame is being sent: the
    most common difference over the first few messages is the stream's first frame number.
    """

    pc: RTCPeerConnection
    base: str
    keep: Keep = np.copy
    video_rtp: RtpTap = field(default_factory=lambda: RtpTap(VIDEO_CLOCK_HZ))
    audio_rtp: RtpTap = field(default_factory=lambda: RtpTap(PLAYBACK_RATE))
    session_id: str = ""
    token: str = ""
    answer_sdp: str = ""
    urls: dict[str, str] = field(default_factory=dict)  # the session's URLs the answer gave (WHEP: its Location)
    links: list[str] = field(default_factory=list)  # a WHEP answer's Link headers
    video_frames: list[ReceivedVideo] = field(default_factory=list)
    audio_frames: list[ReceivedAudio] = field(default_factory=list)
    video_codecs: list[str] = field(default_factory=list)  # MIME types the answer negotiated, preferred first
    keyframe_pts: list[int] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)  # data-channel messages, each with its "arrival" time
    first_frame_estimates: list[int] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)  # set on each video frame and `stats` message
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
        return self.frame_of(self.video_frames[-1].pts)

    def on_message(self, message: str, arrival: float) -> None:
        """A data-channel message: kept as an event; a `stats` one also estimates the first frame number."""
        event = json.loads(message)
        self.events.append({**event, "arrival": arrival})
        if event.get("type") == "stats" and self.video_rtp.newest >= 0:
            arrived = self.video_rtp.newest // PTS_PER_FRAME
            self.first_frame_estimates.append(int(event["frame"]) - STATS_FRAME_LEAD - arrived)
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
            raise ViewerError(
                f"session {self.session_id[:8]}: frame {frame} did not arrive within {timeout:.0f} s "
                f"(last frame {self.last_frame})"
            ) from None

    async def receive(self, track: MediaStreamTrack) -> None:
        """Decode `track` until it ends, keeping what the viewer keeps of each frame."""
        loop = asyncio.get_running_loop()
        while True:
            frame = await track.recv()
            if frame.pts is None:  # aiortc stamps every decoded frame; one without a time could not be placed
                continue
            if isinstance(frame, av.VideoFrame):
                self.video_frames.append(ReceivedVideo(loop.time(), frame.pts, self.keep(luma(frame))))
                if frame.key_frame:
                    self.keyframe_pts.append(frame.pts)
                self.changed.set()
            elif isinstance(frame, av.AudioFrame):
                samples = frame.to_ndarray().astype(np.float32) / 32768.0
                self.audio_frames.append(ReceivedAudio(loop.time(), frame.pts, float(np.sqrt(np.mean(samples**2)))))

    async def close(self, http: aiohttp.ClientSession | None = None) -> None:
        """Hang up; with `http`, also end the session on the edge at once (it would notice the hang-up only later)."""
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.pc.close()
        if http is not None:
            with contextlib.suppress(aiohttp.ClientError):
                async with http.delete(f"{self.base}/sessions/{self.session_id}", headers=self.auth()):
                    pass


def luma(frame: av.VideoFrame) -> np.ndarray:
    """The Y plane of a decoded frame: a view of the decoder's buffer when it is I420, else a conversion."""
    if frame.format.name != "yuv420p":
        return frame.to_ndarray(format="gray")
    plane = frame.planes[0]
    return np.frombuffer(memoryview(plane), np.uint8).reshape(-1, plane.line_size)[: plane.height, : plane.width]


def video_codecs(sdp: str) -> list[str]:
    """MIME types of the video section of an SDP, in its order of preference (as aiortc names them)."""
    codecs, in_video = [], False
    for line in sdp.splitlines():
        if line.startswith("m="):
            in_video = line.startswith("m=video")
        elif in_video and line.startswith("a=rtpmap:"):
            codecs.append("video/" + line.split()[1].split("/")[0])
    return codecs


async def _answer(http: aiohttp.ClientSession, viewer: Viewer, avatar: str, whep: bool) -> str:
    """Send the offer as a browser would (POST /offer, or WHEP) and take the session and its token from the answer."""
    offer, path = viewer.pc.localDescription.sdp, f"/whep/{avatar}" if whep else "/offer"
    if whep:
        request = http.post(viewer.base + path, data=offer, headers={"Content-Type": "application/sdp"})
    else:
        request = http.post(viewer.base + path, json={"sdp": offer, "type": "offer", "avatar": avatar})
    async with request as response:
        if response.status != (201 if whep else 200):
            retry_after = response.headers.get("Retry-After", "")
            raise ViewerError(
                f"POST {path} answered {response.status}: {await response.text()}",
                response.status,
                float(retry_after) if retry_after.isdigit() else None,
            )
        if not whep:
            body = await response.json()
            viewer.session_id, viewer.token, viewer.urls = body["session_id"], body["token"], body["urls"]
            return body["sdp"]
        viewer.session_id, viewer.token = response.headers["X-Session-Id"], response.headers["X-Session-Token"]
        viewer.links = response.headers.getall("Link", [])
        location = response.headers.get("Location", "")
        if not location.endswith(f"/whep/sessions/{viewer.session_id}"):  # a path, or on the edge's public URL
            raise ViewerError(f"WHEP answer locates the session at {location!r}")
        viewer.urls = {"whep": location}
        return await response.text()


async def connect_viewer(
    http: aiohttp.ClientSession,
    base: str,
    avatar: str = BUNDLED_AVATAR,
    *,
    whep: bool = False,
    microphone: MediaStreamTrack | None = None,
    keep: Keep = np.copy,
    decode: bool = True,
    ice: RTCConfiguration | None = None,
) -> Viewer:
    """A receiving session on the edge at `base`, negotiated as the demo page does.

    POST /offer opens the `stats` data channel too (WHEP has none); with a `microphone` the
    viewer sends it as its audio track (echo mode) and receives the speech on the same one.
    Without `decode` the viewer only counts packets (`video_rtp`, `audio_rtp`): a bench that
    measures the edge's cost then spends no CPU on decoding what it sends. `ice` sets the viewer's
    STUN/TURN servers and transport policy (none by default).
    """
    loop = asyncio.get_running_loop()
    pc = RTCPeerConnection(ice)
    viewer = Viewer(pc, base, keep=keep)
    viewer.video_rtp.forward = viewer.audio_rtp.forward = decode
    video = pc.addTransceiver("video", direction="recvonly")
    audio = pc.addTransceiver("audio", direction="recvonly") if microphone is None else pc.addTransceiver(microphone)
    viewer.video_rtp.attach(video.receiver, loop)
    viewer.audio_rtp.attach(audio.receiver, loop)
    if not whep:
        channel = pc.createDataChannel("stats")
        channel.on("message", lambda message: viewer.on_message(message, loop.time()))
    pc.on("track", lambda track: viewer.tasks.append(asyncio.create_task(viewer.receive(track))))
    await pc.setLocalDescription(await pc.createOffer())
    try:
        answer = await _answer(http, viewer, avatar, whep)
    except ViewerError:
        await pc.close()
        raise
    await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    viewer.answer_sdp = answer
    viewer.video_codecs = video_codecs(answer)
    return viewer
