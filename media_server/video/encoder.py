"""H.264 for live video, configured for it (aiortc's stock encoder is not).

aiortc's built-in encoder uses x264's default preset, a 250-frame GOP and a
thread per core per session. This one runs ultrafast + zerolatency, one thread,
a keyframe at least every `keyframe_interval_s`, SPS/PPS repeated on keyframes
(so a receiver can join or recover at any keyframe), and takes I420 frames as
they are stored, with no colour conversion. aiortc sends its `av.Packet`s as-is.
"""

from __future__ import annotations

import fractions

import av
import numpy as np

from lipstream.timebase import VIDEO_FPS, VIDEO_TIME_BASE
from media_server.config import VideoConfig


def x264(width: int, height: int, keyint: int, options: dict[str, str], params: str) -> av.VideoCodecContext:
    """An x264 context for the edge's streams: constrained baseline (what every browser decodes), one
    thread, one reference frame, no look-ahead, a keyframe every `keyint` frames carrying SPS/PPS (a
    receiver can join at any keyframe), and `options`/`params` on top. The live and the idle-loop
    encoders differ only there, so their sequence parameters are the same and a viewer switches between
    their streams at a keyframe."""
    codec = av.CodecContext.create("libx264", "w")
    codec.width = width
    codec.height = height
    codec.pix_fmt = "yuv420p"
    codec.time_base = VIDEO_TIME_BASE
    codec.framerate = fractions.Fraction(VIDEO_FPS, 1)
    codec.thread_count = 1
    codec.options = {
        "profile": "baseline",
        "level": "31",
        "tune": "zerolatency",  # a packet per frame, at once
        **options,
        "x264-params": f"keyint={keyint}:min-keyint={keyint}:scenecut=0:repeat-headers=1:ref=1:{params}",
    }
    return codec


class H264Encoder:
    def __init__(self, width: int, height: int, config: VideoConfig) -> None:
        keyint = max(1, int(round(config.keyframe_interval_s * VIDEO_FPS)))
        options = {"preset": config.preset}
        vbv = f"vbv-maxrate={config.bitrate_kbps}:vbv-bufsize={config.bitrate_kbps // 2}"
        codec = x264(width, height, keyint, options, vbv)
        codec.bit_rate = config.bitrate_kbps * 1000
        self._codec = codec
        self._keyframe_requested = True
        self.width = width
        self.height = height

    def request_keyframe(self) -> None:
        """From the receiver's PLI/FIR: the next frame is a keyframe."""
        self._keyframe_requested = True

    def encode(self, frame_i420: np.ndarray, pts: int) -> av.Packet:
        """One contiguous I420 frame (H*3/2 x W) -> one packet (zerolatency never holds frames back).

        The frame wraps the array without a copy (a copy costs 0.3 ms at 512x512, under the GIL):
        x264 copies its input while it encodes, so the array is free again when this returns.
        """
        return self.encode_frame(av.VideoFrame.from_numpy_buffer(frame_i420, format="yuv420p"), pts)

    def encode_frame(self, frame: av.VideoFrame, pts: int) -> av.Packet:
        frame.pts = pts
        frame.time_base = VIDEO_TIME_BASE
        if self._keyframe_requested:
            frame.pict_type = av.video.frame.PictureType.I
            self._keyframe_requested = False
        packets = self._codec.encode(frame)
        if not packets:
            raise RuntimeError("x264 held a frame back: it must run with tune zerolatency")
        packet = packets[0]
        if len(packets) > 1:  # never seen with zerolatency; keep the stream whole if it happens
            packet = av.Packet(b"".join(bytes(p) for p in packets))
            packet.pts = pts
        packet.time_base = VIDEO_TIME_BASE
        return packet
