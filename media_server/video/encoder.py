"""H.264 for live video, configured for it (aiortc's stock encoder is not), at the bitrate the viewer's link allows.

aiortc's built-in encoder uses x264's default preset, a 250-frame GOP and a thread per core per
session. This one runs ultrafast + zerolatency, one thread, SPS/PPS repeated on keyframes (so a
receiver can join or recover at any keyframe), and takes I420 frames as they are stored, with no
colour conversion. aiortc sends its `av.Packet`s as-is.

Its caller says, frame by frame, the bitrate to send at, whether to make a keyframe, and how many of
the session's 25 frames a second it is given (every `frame_step`-th: the viewer's `ViewerLink` knows
all three). x264 counts its budget per frame at 25 fps, so it is asked for `frame_step` times the
bitrate, and its buffer (VBV) is kept to BUFFER_S of the real rate: a keyframe, the largest frame,
then fills at most that much of a slow link's queue. x264 takes a new average bitrate on the next
frame, but its peak and buffer are fixed when it opens: PyAV cannot change them in an open encoder,
so at a keyframe whose bitrate has moved away from the peak, the encoder is opened afresh with its
peak there; a fresh encoder's first frame is the keyframe. In between the average follows at once.
"""

from __future__ import annotations

import fractions

import av
import numpy as np

from lipstream.timebase import VIDEO_FPS, VIDEO_TIME_BASE
from media_server.config import VideoConfig

PEAK_ROOM = 1.1  # the average may rise this far over the peak the encoder opened with ...
PEAK_FALL = 0.75  # ... or fall this far under it, before a keyframe reopens it at its new rate
BUFFER_S = 0.3  # x264's buffer, in seconds of the real bitrate: the most a frame can exceed its share by


def x264(width: int, height: int, keyint: int | None, options: dict[str, str], params: str) -> av.VideoCodecContext:
    """An x264 context for the edge's streams: constrained baseline (what every browser decodes), one
    thread, one reference frame, no look-ahead, a keyframe every `keyint` frames (None: only where the
    caller asks) carrying SPS/PPS (a receiver can join at any keyframe), and `options`/`params` on top.
    The live and the idle-loop encoders differ only there, so their sequence parameters are the same
    and a viewer switches between their streams at a keyframe."""
    codec = av.CodecContext.create("libx264", "w")
    codec.width = width
    codec.height = height
    codec.pix_fmt = "yuv420p"
    codec.time_base = VIDEO_TIME_BASE
    codec.framerate = fractions.Fraction(VIDEO_FPS, 1)
    codec.thread_count = 1
    gop = "keyint=infinite" if keyint is None else f"keyint={keyint}:min-keyint={keyint}"
    codec.options = {
        "profile": "baseline",
        "level": "31",
        "tune": "zerolatency",  # a packet per frame, at once
        **options,
        "x264-params": f"{gop}:scenecut=0:repeat-headers=1:ref=1:{params}",
    }
    return codec


class H264Encoder:
    def __init__(self, width: int, height: int, config: VideoConfig) -> None:
        self._preset = config.preset
        self._codec: av.VideoCodecContext | None = None
        self._peak_kbps = 0.0
        self._step = 1
        self.width = width
        self.height = height

    @property
    def peak_kbps(self) -> float:
        """The peak bitrate the encoder opened with (0 before its first frame)."""
        return self._peak_kbps

    def encode(self, frame_i420: np.ndarray, pts: int, kbps: float, keyframe: bool, frame_step: int = 1) -> av.Packet:
        """One contiguous I420 frame (H*3/2 x W) -> one packet (zerolatency never holds frames back), at an
        average of `kbps` from this frame on, given every `frame_step`-th frame; a keyframe when asked (and
        on the first frame).

        The frame wraps the array without a copy (a copy costs 0.3 ms at 512x512, under the GIL):
        x264 copies its input while it encodes, so the array is free again when this returns.
        """
        frame = av.VideoFrame.from_numpy_buffer(frame_i420, format="yuv420p")
        return self.encode_frame(frame, pts, kbps, keyframe, frame_step)

    def encode_frame(
        self, frame: av.VideoFrame, pts: int, kbps: float, keyframe: bool, frame_step: int = 1
    ) -> av.Packet:
        frame.pts = pts
        frame.time_base = VIDEO_TIME_BASE
        codec = self._codec
        kbps *= frame_step  # x264's budget per frame is its bitrate / 25
        moved = not PEAK_FALL * self._peak_kbps <= kbps <= PEAK_ROOM * self._peak_kbps or frame_step != self._step
        if codec is None or (keyframe and moved):
            codec = self._open(kbps, frame_step)
        else:
            rate = int(min(kbps, self._peak_kbps) * 1000)
            if codec.bit_rate != rate:
                codec.bit_rate = rate
            if keyframe:
                frame.pict_type = av.video.frame.PictureType.I
        packets = codec.encode(frame)
        if not packets:
            raise RuntimeError("x264 held a frame back: it must run with tune zerolatency")
        packet = packets[0]
        if len(packets) > 1:  # never seen with zerolatency; keep the stream whole if it happens
            packet = av.Packet(b"".join(bytes(p) for p in packets))
            packet.pts = pts
        packet.time_base = VIDEO_TIME_BASE
        return packet

    def _open(self, kbps: float, frame_step: int) -> av.VideoCodecContext:
        """A fresh encoder peaking at `kbps` (its VBV: `maxrate`, and BUFFER_S of the real rate as `bufsize`,
        which the codec context must hold for x264 to take a new average bitrate while it runs)."""
        peak = max(1, round(kbps))
        bufsize = max(1, round(peak * BUFFER_S / frame_step))
        options = {"preset": self._preset, "maxrate": f"{peak}k", "bufsize": f"{bufsize}k"}
        codec = x264(self.width, self.height, None, options, "")
        codec.bit_rate = peak * 1000
        self._codec, self._peak_kbps, self._step = codec, float(peak), frame_step
        return codec
