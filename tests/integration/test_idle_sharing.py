"""Encode-once idle at the wire: viewers of one avatar receive the very bytes of its one idle loop,
and a session that speaks hands over to its own encoder and back with nothing lost."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import numpy as np
import pytest
from aiortc.codecs.h264 import H264PayloadDescriptor
from edge_helpers import mouth_motion, running_edge, wait_for

from benchmarks.kit.speech import encode, voiced_bursts
from benchmarks.kit.viewer import RtpTap, Viewer, connect_viewer
from lipstream.timebase import PTS_PER_FRAME

LOOP_KEYFRAME_EVERY = 25


def nal_units(annex_b: bytes) -> list[bytes]:
    """The NAL units of an Annex B stream, without start codes (a NAL unit never ends in a zero byte)."""
    return [unit.rstrip(b"\0") for unit in annex_b.split(b"\0\0\1") if unit.strip(b"\0")]


def received_frames(tap: RtpTap) -> dict[int, list[bytes]]:
    """Each received frame's NAL units (by pts), depacketised from its RTP payloads in arrival order."""
    return {
        ticks: nal_units(b"".join(H264PayloadDescriptor.parse(payload)[1] for payload in packets.values()))
        for ticks, packets in tap.payloads.items()
    }


async def state(http: aiohttp.ClientSession, url: str, viewer: Viewer) -> dict:
    async with http.get(f"{url}/sessions/{viewer.session_id}", headers=viewer.auth()) as response:
        assert response.status == 200
        return await response.json()


async def test_idle_viewers_of_one_avatar_receive_the_bytes_of_its_one_idle_loop() -> None:
    # A link known to have room: the sessions start at the top bitrate, so they play the loop's top rung.
    async with running_edge(video={"start_bitrate_kbps": 1500}) as edge, aiohttp.ClientSession() as http:
        viewers = [await connect_viewer(http, edge.url) for _ in range(2)]
        for viewer in viewers:
            viewer.video_rtp.keep_payloads = True
        try:
            avatar = await edge.edge.load_avatar("default")
            loop = (await edge.edge.idle_loops.ready(avatar))[0]  # the top rung: this link has room
            await wait_for(
                lambda: all(v.first_frame is not None and len(v.video_frames) >= 100 for v in viewers), 40, "4 s each"
            )
            states = [await state(http, edge.url, viewer) for viewer in viewers]
        finally:
            for viewer in viewers:
                await viewer.close(http)

    assert all(s["video_source"] == "shared" and s["stats"]["shared_frames"] > 50 for s in states), states
    shared: list[set[int]] = []
    for viewer in viewers:
        frames = sorted(received_frames(viewer.video_rtp).items())
        same = [
            loop_units == nal_units(loop.packets[loop.position(viewer.frame_of(ticks))]) for ticks, loop_units in frames
        ]
        joined = same.index(True)  # the session sends its own frames until the loop is encoded and at a keyframe
        assert joined <= 2 * LOOP_KEYFRAME_EVERY + 1 and all(same[joined:]), f"{viewer.session_id[:8]} left the loop"
        assert len(same) - joined >= 50
        shared.append({loop.position(viewer.frame_of(ticks)) for ticks, _ in frames[joined:]})
    assert len(shared[0] & shared[1]) >= 25, "both sessions sent the same loop frames, byte for byte"


async def test_a_speaking_session_decodes_whole_across_idle_speech_idle(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="aiortc")
    # A link known to have room: the session plays the loop's top rung as soon as it is encoded.
    async with running_edge(video={"start_bitrate_kbps": 1500}) as edge, aiohttp.ClientSession() as http:
        viewer = await connect_viewer(http, edge.url)
        try:
            avatar = await edge.edge.load_avatar("default")
            await wait_for(lambda: len(viewer.video_frames) >= 50, 30, "idle video")
            sources = [(await state(http, edge.url, viewer))["video_source"]]
            async with http.post(
                f"{edge.url}/sessions/{viewer.session_id}/speech",
                data=encode(voiced_bursts(2.0)),
                headers=viewer.auth(),
            ) as response:
                assert response.status == 202
            await wait_for(lambda: any(e["type"] == "speech_start" for e in viewer.events), 10, "speech start")
            await asyncio.sleep(0.5)
            sources.append((await state(http, edge.url, viewer))["video_source"])
            await wait_for(lambda: any(e["type"] == "speech_end" for e in viewer.events), 15, "speech end")
            await asyncio.sleep(2.0)  # back on the loop within a second, then a second of it
            final = await state(http, edge.url, viewer)
            sources.append(final["video_source"])
        finally:
            await viewer.close(http)

    assert sources == ["shared", "own", "shared"]
    failures = [r.getMessage() for r in caplog.records if "decode" in r.getMessage()]
    assert not failures, failures
    # Every frame that arrived was decoded, and they follow each other (or the server says it skipped some).
    pts = np.array([f.pts for f in viewer.video_frames])
    arrived = len(viewer.video_rtp.packet_arrival)
    assert arrived - len(pts) <= 2, f"{arrived - len(pts)} frames arrived and were not decoded"
    assert (np.diff(pts) // PTS_PER_FRAME - 1).sum() <= final["stats"]["skipped_frames"]
    # The pictures are right on both sides of each switch: the idle mouth is closed, the speaking one moves
    # (after the speech, until the loop's next keyframe, the session's own encoder runs at the rate the
    # speech started at, near the loop's, not at the maximum: a little more codec noise).
    motion = mouth_motion(avatar, viewer.video_frames)
    start = next(e for e in viewer.events if e["type"] == "speech_start")["frame"]
    end = next(e for e in viewer.events if e["type"] == "speech_end")["frame"]
    assert motion[5 : start - 2].max() < 4 and motion[end + 3 :].max() < 6, "a wrong picture after a switch"
    assert np.percentile(motion[start:end], 90) > 12
    # No keyframe storm: the loop's one a second, and the one the session's own encoder starts with.
    seconds = len(pts) / 25
    assert len(viewer.keyframe_pts) <= seconds + 3, viewer.keyframe_pts
