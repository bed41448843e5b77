"""What the OpenAPI fuzzing sends that schemathesis cannot make alone: audio, SDP- and trickle-like text, credentials.

Importing this registers the media types with schemathesis.
"""

from __future__ import annotations

import io
import math
import struct
import wave

import schemathesis
from hypothesis import strategies as st


def _wav(seconds: float, rate: int = 16_000) -> bytes:
    """A short tone: speech the edge accepts (202), so the fuzzing reaches the queue too."""
    samples = [int(8000 * math.sin(2 * math.pi * 220 * i / rate)) for i in range(int(seconds * rate))]
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(struct.pack(f"<{len(samples)}h", *samples))
    return buffer.getvalue()


# The fuzzed edge's speech limits, small enough for the fuzzing to reach them (413, 429).
SPEECH_LIMITS = {"max_speech_mb": 0.008, "max_speech_seconds": 0.25, "max_queued_utterances": 2}
WAV = _wav(0.1, 8000)
TOO_LONG_WAV = _wav(0.3, 8000)  # within the size limit, over the length limit
# SDP and trickle fragments are text; audio/* is a tone, a damaged one, noise, or too much noise.
schemathesis.serializer.alias(["application/sdp", "application/trickle-ice-sdpfrag"], "text/plain")
schemathesis.openapi.media_type(
    "audio/wav",
    st.one_of(
        st.sampled_from([WAV, TOO_LONG_WAV]),
        st.integers(1, len(WAV) - 1).map(lambda n: WAV[:n]),
        st.binary(max_size=2048),
        st.binary(min_size=8400, max_size=9000),
    ),
)

# No `a=ice-pwd` line: aiortc refuses every such offer, so the fuzzing never opens a session of its own
# (each would hold the edge's capacity until its connect timeout).
SDP_LINES = st.one_of(
    st.sampled_from(
        [
            "o=- 1 1 IN IP4 127.0.0.1",
            "s=-",
            "t=0 0",
            "a=group:BUNDLE 0 1",
            "m=video 9 UDP/TLS/RTP/SAVPF 96",
            "m=audio 9 UDP/TLS/RTP/SAVPF 111",
            "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
            "m=video 0 RTP/AVP 0",
            "c=IN IP4 0.0.0.0",
            "a=mid:0",
            "a=mid:1",
            "a=rtpmap:96 H264/90000",
            "a=rtpmap:96 VP8/90000",
            "a=rtpmap:111 opus/48000/2",
            "a=fmtp:96 packetization-mode=1;profile-level-id=42e01f",
            "a=rtcp-fb:96 nack pli",
            "a=recvonly",
            "a=sendrecv",
            "a=rtcp-mux",
            "a=ice-ufrag:fuzz",
            "a=setup:actpass",
            "a=fingerprint:sha-256 " + ":".join(["AB"] * 32),
            "a=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host",
            "a=ssrc:1 cname:x",
        ]
    ),
    st.text(max_size=40),
)
SDP_LIKE = st.lists(SDP_LINES, max_size=24).map(lambda lines: "\r\n".join(["v=0", *lines]) + "\r\n")
CANDIDATE_LINES = st.one_of(
    st.sampled_from(
        [
            "a=mid:0",
            "a=mid:1",
            "a=mid:2",
            "a=mid:nine",
            "a=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host",
            "a=candidate:2 1 tcp 1 127.0.0.1 9 typ host tcptype passive",
            "a=candidate:3 1 udp 1 fuzz.invalid 9 typ host",
            "a=candidate:4 1 udp 1 ::1 9 typ srflx raddr 0.0.0.0 rport 0",
            "a=candidate:",
            "a=candidate:x",
            "a=end-of-candidates",
            "a=ice-ufrag:fuzz",
        ]
    ),
    st.text(max_size=60).map(lambda text: "a=candidate:" + text),
    st.text(max_size=20),
)
TRICKLE_LIKE = st.lists(CANDIDATE_LINES, max_size=40).map("\r\n".join)
# What a client may put in a header: printable ASCII and, as HTTP allows (obs-text), bytes 0x80-0xFF,
# which `requests` sends as Latin-1.
HEADER_TEXT = st.text(st.characters(codec="latin-1", exclude_categories=["Cc"]), max_size=40)
CREDENTIALS = st.one_of(
    HEADER_TEXT.map(lambda text: f"Bearer {text}"),
    HEADER_TEXT.map(lambda text: f"Basic {text}"),
    HEADER_TEXT.map(str.lstrip),  # a header value cannot start with white space
)
