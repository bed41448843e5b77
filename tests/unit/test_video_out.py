"""Encode-once idle: the shared idle loop, a session's switches between it and its own encoder, shared silence.

Each stream a session would send is decoded here as a viewer would: every packet must decode, and
every frame taken from the shared loop must be exactly the picture the loop itself decodes to (a
switch at the wrong frame would decode against the wrong reference and differ).
"""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from lipstream.timebase import PLAYBACK_CHUNK_SAMPLES, PTS_PER_FRAME, VIDEO_TIME_BASE
from media_server.avatars.bundled import ensure_bundled_avatar
from media_server.avatars.store import FrameStore, LoadedAvatar
from media_server.config import VideoConfig
from media_server.session.audio_out import DTX_CHUNKS, TAIL_CHUNKS, AudioOut, silence
from media_server.session.mouth import IDLE, LATE, Mouth
from media_server.session.renderer import Renderer
from media_server.session.stats import SessionStats
from media_server.session.video_out import VideoOut
from media_server.speech.timeline import SILENT_CHUNK
from media_server.video.idle_loop import IdleLoop, IdleLoops

CONFIG = VideoConfig()
KEYFRAME_EVERY = 25  # shared_keyframe_interval_s 1 s at 25 fps


@pytest.fixture(scope="module")
def avatar() -> LoadedAvatar:
    return FrameStore().get(ensure_bundled_avatar())


def open_mouth(avatar: LoadedAvatar, background: int) -> Mouth:
    """The model crop of `background` with a dark band across it: a visibly different frame."""
    crop = np.array(avatar.crops_i420[background])
    crop[150 * 320 : 200 * 320] = 20
    return Mouth(crop.tobytes(), late=False)


def decode(packets: list[bytes]) -> list[np.ndarray]:
    """Every packet through one H.264 decoder, as a viewer gets them; each must give exactly one picture."""
    decoder = av.CodecContext.create("h264", "r")
    pictures = []
    for index, data in enumerate(packets):
        packet = av.Packet(data)
        packet.pts, packet.time_base = index * PTS_PER_FRAME, VIDEO_TIME_BASE
        frames = decoder.decode(packet)
        assert len(frames) == 1, f"packet {index} gave {len(frames)} pictures"
        pictures.append(frames[0].to_ndarray(format="yuv420p"))
    return pictures


async def test_the_loop_is_encoded_once_with_a_keyframe_each_second(avatar: LoadedAvatar) -> None:
    loops = IdleLoops(CONFIG)
    assert loops.get(avatar) is None  # not encoded yet: it starts now
    loop = await loops.ready(avatar)
    assert loops.get(avatar) is loop and await loops.ready(avatar) is loop
    assert len(loop.packets) == len(avatar.idle_sequence()) == 98
    assert loop.keyframe_every == KEYFRAME_EVERY
    keyframes = [p for p in range(98) if loop.is_keyframe(p)]
    assert keyframes == [0, 25, 50, 75]
    # The wrap needs no reference: decoded from position 0, the loop shows the idle sequence.
    pictures = decode(list(loop.packets))
    for position, index in enumerate(avatar.idle_sequence()):
        error = np.abs(pictures[position].astype(np.int16) - avatar.frames[index]).mean()
        assert error < 3, (position, error)


async def test_a_session_switches_only_where_its_viewer_loses_nothing(avatar: LoadedAvatar) -> None:
    loops = IdleLoops(CONFIG)
    loop = await loops.ready(avatar)
    stats = SessionStats()
    renderer = Renderer(avatar, CONFIG, stats, "test-render")
    video = VideoOut(avatar, renderer, loops, stats)
    idle = avatar.idle_sequence()

    # Idle, then 15 speaking frames (two of them late), idle again, 3 frames skipped while idle, idle.
    frames = [*range(0, 104), *range(107, 140)]
    speaking = set(range(30, 45))
    sent: list[tuple[int, bytes, str]] = []
    keyframes = []
    try:
        for frame in frames:
            background = idle[frame % len(idle)]
            mouth = IDLE if frame not in speaking else LATE if frame in (33, 40) else open_mouth(avatar, background)
            packet = await video.packet(frame, background, mouth)
            assert packet.pts == frame * PTS_PER_FRAME
            sent.append((frame, bytes(packet), video.source))
            if packet.is_keyframe:
                keyframes.append(frame)
            if video.source == "shared":
                assert not renderer.encoding, "an idle session on the shared loop holds no encoder"
    finally:
        await renderer.close()

    source = {frame: kind for frame, _, kind in sent}
    assert all(source[f] == "shared" for f in range(0, 30)), "frame 0 is a loop keyframe: join at once"
    assert all(source[f] == "own" for f in range(30, 50)), "speech, then own frames until the loop's keyframe"
    assert all(source[f] == "shared" for f in range(50, 104))
    assert all(source[f] == "own" for f in range(107, 123)), "a skip breaks the chain until a keyframe"
    assert all(source[f] == "shared" for f in range(123, 140)), "frame 123 is loop position 25"
    assert stats.shared_frames == sum(kind == "shared" for kind in source.values())

    pictures = decode([data for _, data, _ in sent])
    reference = decode(list(loop.packets))
    for (frame, _, kind), picture in zip(sent, pictures, strict=True):
        if kind == "shared":
            assert np.array_equal(picture, reference[loop.position(frame)]), f"frame {frame} decoded wrong"
        else:
            expected = avatar.frames[idle[frame % len(idle)]]
            error = np.abs(picture.astype(np.int16) - expected).mean()
            assert error < (8 if frame in speaking else 3), (frame, error)
    assert keyframes == [0, 25, 30, 50, 75, 98, 107, 123], "the loop's (98 wraps), each own encoder's first"


async def test_idle_sessions_send_the_same_bytes_and_keyframe_requests_are_answered(avatar: LoadedAvatar) -> None:
    loops = IdleLoops(CONFIG)
    loop: IdleLoop = await loops.ready(avatar)
    stats = SessionStats()
    renderers = [Renderer(avatar, CONFIG, stats, f"test-{i}") for i in range(2)]
    first, second = (VideoOut(avatar, renderer, loops, stats) for renderer in renderers)
    idle = avatar.idle_sequence()
    try:
        for frame in range(0, 10):
            background = idle[frame % len(idle)]
            a, b = await first.packet(frame, background, IDLE), await second.packet(frame, background, IDLE)
            assert bytes(a) == bytes(b) == loop.packets[frame]

        # A keyframe request on the shared loop: its next keyframe (frame 25) answers it, with no encoder.
        first.request_keyframe()
        for frame in range(10, 26):
            packet = await first.packet(frame, idle[frame % len(idle)], IDLE)
            assert packet.is_keyframe == (frame == 25) and not renderers[0].encoding

        # On its own encoder, at once.
        await first.packet(26, idle[26], open_mouth(avatar, idle[26]))
        first.request_keyframe()
        assert (await first.packet(27, idle[27], open_mouth(avatar, idle[27]))).is_keyframe
    finally:
        for renderer in renderers:
            await renderer.close()


def test_silence_is_shared_and_sparse_and_speech_gets_an_encoder_that_fades_out() -> None:
    audio = AudioOut()
    rng = np.random.default_rng(0)
    speech = [(rng.standard_normal(PLAYBACK_CHUNK_SAMPLES) * 4000).astype(np.int16) for _ in range(20)]
    chunks = [SILENT_CHUNK] * 10 + speech + [SILENT_CHUNK] * 40
    sent: dict[int, bytes] = {}
    for k, samples in enumerate(chunks):
        packet = audio.packet(k, samples, speech_queued=8 <= k < 30)
        if packet is not None:
            assert packet.pts == k * PLAYBACK_CHUNK_SAMPLES
            sent[k] = bytes(packet)
        if k < 10 or k >= 30 + TAIL_CHUNKS:
            assert not audio.encoding, k
    tail_end = 30 + TAIL_CHUNKS
    # Silence every 400 ms as DTX, but every chunk once speech is queued (chunk 8), and speech's tail.
    assert list(sent) == [0, 8, 9, *range(10, tail_end), tail_end - 1 + DTX_CHUNKS]
    assert sent[0] == sent[8] == sent[9] == sent[tail_end - 1 + DTX_CHUNKS] == silence() and len(silence()) <= 3
    assert all(sent[k] != silence() for k in range(10, 30))

    decoder = av.CodecContext.create("libopus", "r")
    decoder.format, decoder.layout, decoder.sample_rate = "s16", "stereo", 48000
    levels = {}
    for k, data in sent.items():
        packet = av.Packet(data)
        packet.pts, packet.time_base = k * PLAYBACK_CHUNK_SAMPLES, Fraction(1, 48000)
        (frame,) = decoder.decode(packet)
        levels[k] = float(np.sqrt(np.mean(frame.to_ndarray().astype(np.float64) ** 2)))
    assert levels[0] == levels[9] == levels[tail_end - 1 + DTX_CHUNKS] == 0
    assert min(levels[k] for k in range(14, 30)) > 2000, "the speech is heard (after the onset)"
    assert levels[tail_end - 1] < 100, "the encoder's tail fades out"
