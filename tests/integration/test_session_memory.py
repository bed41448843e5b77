"""An ended session gives back what it held, even in an edge whose collector would not have got to it."""

from __future__ import annotations

import weakref

import aiohttp
from edge_helpers import running_edge, wait_for

from benchmarks.kit.viewer import connect_viewer


async def test_a_deleted_session_is_collected_once_the_edge_reclaims(collector_off: None) -> None:
    async with running_edge() as edge, aiohttp.ClientSession() as http:
        viewer = await connect_viewer(http, edge.url)
        await wait_for(lambda: len(viewer.video_frames) >= 5, 20, "video")
        session = weakref.ref(edge.edge.sessions[viewer.session_id])
        peer = weakref.ref(edge.edge.peer(viewer.session_id))
        await viewer.close(http)
        await wait_for(lambda: viewer.session_id not in edge.edge.sessions, 5, "the session to end")
        await edge.edge.reclaimer.flush()
        assert session() is None, "the session's objects outlived its end"
        assert peer() is None, "the peer connection outlived its session"
