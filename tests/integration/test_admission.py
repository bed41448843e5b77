"""Who gets a session: limits that no anonymous client can exhaust, and refusal while the edge is late."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import pytest
from aiortc import RTCPeerConnection
from edge_helpers import running_edge, wait_for

from benchmarks.kit.viewer import connect_viewer
from signaling.access_log import redact


async def unapplied_offer() -> str:
    """An offer whose answer will never be applied: the session never connects."""
    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    await pc.close()
    return pc.localDescription.sdp


async def post_offer(http: aiohttp.ClientSession, url: str, sdp: str) -> aiohttp.ClientResponse:
    async with http.post(f"{url}/offer", json={"sdp": sdp, "type": "offer"}) as response:
        await response.read()
        return response


async def test_sessions_that_never_connect_have_their_own_small_cap_and_a_short_life() -> None:
    sessions = {"max_sessions": 6, "max_connecting": 2, "connect_timeout_s": 1.0}
    async with running_edge(sessions=sessions) as edge, aiohttp.ClientSession() as http:
        sdp = await unapplied_offer()
        assert [(await post_offer(http, edge.url, sdp)).status for _ in range(2)] == [200, 200]
        refused = await post_offer(http, edge.url, sdp)
        assert refused.status == 503 and refused.headers["Retry-After"]
        await wait_for(lambda: not edge.edge.sessions, 5, "unconnected sessions to end")
        assert (await post_offer(http, edge.url, sdp)).status == 200, "slots come back once they time out"


async def test_one_client_cannot_open_sessions_faster_than_its_rate() -> None:
    http_config = {"sessions_per_minute": 6, "session_burst": 2}
    async with running_edge(http=http_config) as edge, aiohttp.ClientSession() as http:
        sdp = await unapplied_offer()
        statuses = [(await post_offer(http, edge.url, sdp)).status for _ in range(2)]
        limited = await post_offer(http, edge.url, sdp)
        assert statuses == [200, 200]
        assert limited.status == 429 and 1 <= int(limited.headers["Retry-After"]) <= 10


async def test_an_edge_missing_deadlines_refuses_new_sessions_until_it_recovers() -> None:
    sessions = {"overload_late_pct": 5.0, "overload_window_s": 1.0}
    async with running_edge(sessions=sessions) as edge, aiohttp.ClientSession() as http:
        edge.edge.load.frames(sent=100, late=30)  # what sessions report when frames go out late
        refused = await post_offer(http, edge.url, await unapplied_offer())
        assert refused.status == 503 and "overloaded" in (await refused.json())["error"]
        await asyncio.sleep(1.5)  # the late frames leave the window
        assert (await post_offer(http, edge.url, await unapplied_offer())).status == 200


@pytest.mark.parametrize("limit", ["size", "m-lines"])
async def test_oversized_offers_are_refused(limit: str) -> None:
    async with running_edge(http={"max_sdp_kb": 8, "max_sdp_media": 4}) as edge, aiohttp.ClientSession() as http:
        sdp = await unapplied_offer()
        if limit == "size":
            sdp += "a=x-padding:" + "p" * 9000 + "\r\n"
        else:
            sdp += "".join(f"m=application {9 + i} UDP/DTLS/SCTP webrtc-datachannel\r\n" for i in range(5))
        response = await post_offer(http, edge.url, sdp)
        assert response.status in (400, 413)
        assert not edge.edge.sessions


async def test_tokens_work_in_urls_only_for_websockets_and_never_reach_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with running_edge() as edge, aiohttp.ClientSession() as http:
        viewer = await connect_viewer(http, edge.url)
        try:
            control = f"{edge.url}/sessions/{viewer.session_id}"
            async with http.get(f"{control}?token={viewer.token}") as response:
                assert response.status == 403, "a token in a URL is not a credential outside WebSockets"
            with caplog.at_level(logging.INFO, logger="aiohttp.access"):
                async with http.ws_connect(f"{control}/stream?token={viewer.token}") as ws:
                    await ws.send_str('{"sample_rate": 16000}')
                    assert (await ws.receive_json(timeout=5))["type"] == "ready"
                await asyncio.sleep(0.2)
            logged = "\n".join(record.getMessage() for record in caplog.records)
            assert f"{viewer.session_id}/stream" in logged and viewer.token not in logged
        finally:
            await viewer.close()


def test_redaction_keeps_the_path_and_hides_every_token() -> None:
    assert redact("/s/1/stream?token=abc&x=1") == "/s/1/stream?token=<redacted>&x=1"
    assert redact("/s?a=1&TOKEN=abc") == "/s?a=1&TOKEN=<redacted>"
