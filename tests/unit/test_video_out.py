"""Encode-once idle: the shared idle loop and its rungs, a session's switches between them and its own encoder
(and its own encoder's bitrate, frames and keyframes, as its viewer's link sets them), shared silence.

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
from media_server.network.link import ViewerLink
from media_server.session.audio_out import DTX_CHUNKS, TAIL_CHUNKS, AudioOut, silence
from media_server.session.mouth import IDLE, LATE, Mouth
from media_server.session.renderer import Renderer
from media_server.session.stats import SessionStats
from media_server.session.video_out import VideoOut
from media_server.speech.timeline import SILENT_CHUNK
from media_server.video.idle_loop import IdleLoop, IdleLoops, choose_rung

CONFIG = VideoConfig(start_bitrate_kbps=1500)  # a link with room from the start (the edge starts lower)
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


def session_video(avatar: LoadedAvatar, loops: IdleLoops, name: str) -> tuple[VideoOut, Renderer, ViewerLink]:
    stats = SessionStats()
    link = ViewerLink(CONFIG, avatar.width, avatar.height)
    renderer = Renderer(avatar, CONFIG, stats, name)
    return VideoOut(avatar, renderer, loops, link, stats), renderer, link


async def test_the_loop_is_encoded_once_in_rungs_with_a_keyframe_each_second(avatar: LoadedAvatar) -> None:
    loops = IdleLoops(CONFIG)
    assert loops.get(avatar) is None  # not encoded yet: it starts now
    rungs = await loops.ready(avatar)
    assert loops.get(avatar) is rungs and await loops.ready(avatar) is rungs
    # The top rung at constant quality, under the live encoder's usual rate; the lower ones near their bitrates.
    assert [round(rung.kbps, -1) for rung in rungs[1:]] == [pytest.approx(k, rel=0.15) for k in CONFIG.idle_rungs_kbps]
    assert CONFIG.idle_rungs_kbps[0] < rungs[0].kbps < CONFIG.max_bitrate_kbps / 2
    for rung in rungs:
        assert len(rung.packets) == len(avatar.idle_sequence()) == 98
        assert rung.keyframe_every == KEYFRAME_EVERY
        keyframes = [p for p in range(98) if rung.is_keyframe(p)]
        assert keyframes == [0, 25, 50, 75]
        # The wrap needs no reference: decoded from position 0, the loop shows the idle sequence.
        pictures = decode(list(rung.packets))
        for position, index in enumerate(avatar.idle_sequence()):
            error = np.abs(pictures[position].astype(np.int16) - avatar.frames[index]).mean()
            assert error < (3 if rung is rungs[0] else 8), (rung.kbps, position, error)


async def test_a_session_switches_only_where_its_viewer_loses_nothing(avatar: LoadedAvatar) -> None:
    loops = IdleLoops(CONFIG)
    loop = (await loops.ready(avatar))[0]  # the start bitrate is above the top rung's
    video, renderer, link = session_video(avatar, loops, "test-render")
    stats = video._stats
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
            assert error < (8 if frame in speaking else 4), (frame, error)
    assert keyframes == [0, 25, 30, 50, 75, 98, 107, 123], "the loop's (98 wraps), each own encoder's first"
    assert link.keyframes.sent == len(keyframes) and link.rate.sent_kbps(link._clock()) > 0


async def test_idle_sessions_send_the_same_bytes_and_keyframe_requests_are_answered(avatar: LoadedAvatar) -> None:
    loops = IdleLoops(CONFIG)
    loop = (await loops.ready(avatar))[0]
    (first, renderer, link), (second, other, _) = (session_video(avatar, loops, f"test-{i}") for i in range(2))
    idle = avatar.idle_sequence()
    try:
        for frame in range(0, 10):
            background = idle[frame % len(idle)]
            a, b = await first.packet(frame, background, IDLE), await second.packet(frame, background, IDLE)
            assert bytes(a) == bytes(b) == loop.packets[frame]

        # A keyframe request on the shared loop: its next keyframe (frame 25) answers it, with no encoder.
        link.keyframe_requested()
        for frame in range(10, 26):
            packet = await first.packet(frame, idle[frame % len(idle)], IDLE)
            assert packet.is_keyframe == (frame == 25) and not renderer.encoding
        assert not link.keyframes.requested

        # On its own encoder (which starts with one), at once, but no sooner than 500 ms after the last.
        keyframes = []
        for frame in range(26, 60):
            if frame in (27, 30, 45):
                link.keyframe_requested()
            packet = await first.packet(frame, idle[frame % len(idle)], open_mouth(avatar, idle[frame % len(idle)]))
            if packet.is_keyframe:
                keyframes.append(frame)
        assert keyframes == [26, 39, 52]
        assert (link.keyframes.requests, link.keyframes.sent) == (4, 5), "frames 0, 25, 26, 39 and 52"
    finally:
        for each in (renderer, other):
            await each.close()


async def test_idle_sessions_move_to_the_rung_their_link_carries_at_a_loop_keyframe(avatar: LoadedAvatar) -> None:
    loops = IdleLoops(CONFIG)
    rungs = await loops.ready(avatar)
    video, renderer, link = session_video(avatar, loops, "test-rungs")
    idle = avatar.idle_sequence()
    sent: list[tuple[int, bytes, float | None]] = []
    try:
        for frame in range(0, 140):
            if frame == 5:
                link.estimate(2_000_000)  # the receiver's first: what reached it
            if frame == 10:
                link.loss(0.05)  # a report that confirms the drop below
                link.estimate(int(rungs[-1].kbps * 1000) + 5000)  # only the lowest rung fits
            if frame == 60:
                link.estimate(100_000)  # under the least bitrate: the lowest rung still, every frame
            background = idle[frame % len(idle)]
            mouth = open_mouth(avatar, background) if frame >= 100 else IDLE  # then speech: its own encoder
            if video.sends(frame, idle=mouth.idle):
                packet = await video.packet(frame, background, mouth)
                sent.append((frame, bytes(packet), video.rung_kbps))
    finally:
        await renderer.close()

    rung_of = {frame: kbps for frame, _, kbps in sent}
    assert all(rung_of[f] == rungs[0].kbps for f in range(0, 25)), "the top rung until the loop's next keyframe"
    assert all(rung_of[f] == rungs[-1].kbps for f in range(25, 100))
    own = [frame for frame, _, kbps in sent if kbps is None]
    assert own == list(range(100, 140, 2)), "at the least bitrate, its own encoder sends every 2nd frame"
    assert link.rate.frame_step == 2 and link.rate.target_kbps == CONFIG.min_bitrate_kbps
    # Every frame decodes to its picture: the rung switch at a keyframe lost no reference.
    pictures = decode([data for _, data, _ in sent])
    references = {rung.kbps: decode(list(rung.packets)) for rung in (rungs[0], rungs[-1])}
    for (frame, _, kbps), picture in zip(sent, pictures, strict=True):
        if kbps is not None:
            assert np.array_equal(picture, references[kbps][rungs[0].position(frame)]), frame
        else:
            expected = avatar.frames[idle[frame % len(idle)]]
            assert np.abs(picture.astype(np.int16) - expected).mean() < 10, frame


def test_an_idle_session_climbs_the_rungs_one_at_a_time_and_falls_as_far_as_it_must() -> None:
    top, middle, low = (IdleLoop((b"",), 1, kbps) for kbps in (437, 306, 219))
    rungs = (top, middle, low)
    assert choose_rung(rungs, 300, None) is low, "joining: the best within the target"
    assert choose_rung(rungs, 1500, low) is middle, "one rung up, whatever the target allows"
    assert choose_rung(rungs, 1500, middle) is top
    assert choose_rung(rungs, 200, top) is None, "down: as far as the target says"
    assert choose_rung(rungs, 290, middle) is middle, "within STAY_MARGIN of it: the rung playing stays"


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
