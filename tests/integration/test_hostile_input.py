"""Hostile and malformed input gets a clear error and costs the edge nothing."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from aiohttp import WSMsgType
from edge_helpers import running_edge

from benchmarks.kit.viewer import connect_viewer


@pytest.mark.parametrize(
    ("header", "named"),
    [
        ('{"sample_rate": 1}', "sample_rate"),  # 4 KB at 1 Hz once cost gigabytes of resampling
        ('{"sample_rate": 1000000000}', "sample_rate"),
        ('{"sample_rate": 1e400}', "sample_rate"),  # JSON's infinity
        ('{"sample_rate": "fast"}', "sample_rate"),
        ('{"sample_rate": 24000, "channels": 64}', "channels"),
        ('{"sample_rate": 24000, "format": "s24le"}', "format"),
        ("[1, 2, 3]", "sample_rate"),
    ],
)
async def test_live_stream_headers_outside_the_speech_range_are_refused(header: str, named: str) -> None:
    async with running_edge() as edge, aiohttp.ClientSession() as http:
        viewer = await connect_viewer(http, edge.url)
        try:
            stream = f"{edge.url}/sessions/{viewer.session_id}/stream?token={viewer.token}"
            async with http.ws_connect(stream) as ws:
                await ws.send_str(header)
                error = await ws.receive_json(timeout=5)
                assert error["type"] == "error" and named in error["message"]
                closing = await ws.receive(timeout=5)
                assert closing.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING)
                assert ws.close_code == 1000, "the server closes the stream itself, not a dropped connection"
        finally:
            await viewer.close()


async def test_live_audio_over_the_limit_is_refused_before_any_work() -> None:
    async with running_edge(sessions={"max_speech_seconds": 2.0}) as edge, aiohttp.ClientSession() as http:
        viewer = await connect_viewer(http, edge.url)
        try:
            stream = f"{edge.url}/sessions/{viewer.session_id}/stream?token={viewer.token}"
            async with http.ws_connect(stream) as ws:
                await ws.send_str('{"sample_rate": 8000, "channels": 4}')
                assert (await ws.receive_json(timeout=5))["type"] == "ready"
                started = time.monotonic()
                await ws.send_bytes(bytes(8000 * 4 * 2 * 3))  # 3 s of 4-channel audio in one message
                error = await ws.receive_json(timeout=5)
                assert "longer than the 2 s limit" in error["message"]
                assert time.monotonic() - started < 1.0
            assert edge.edge.sessions[viewer.session_id].queued_seconds() == 0
        finally:
            await viewer.close()


async def test_nested_json_and_stray_messages_on_the_stream_get_errors_not_a_dropped_socket() -> None:
    async with running_edge() as edge, aiohttp.ClientSession() as http:
        viewer = await connect_viewer(http, edge.url)
        try:
            stream = f"{edge.url}/sessions/{viewer.session_id}/stream?token={viewer.token}"
            async with http.ws_connect(stream) as ws:
                await ws.send_str("[" * 100_000 + "]" * 100_000)
                assert "must be JSON" in (await ws.receive_json(timeout=5))["message"]
                await ws.send_str('{"sample_rate": 16000}')
                assert (await ws.receive_json(timeout=5))["type"] == "ready"
                await ws.send_str('["end"]')
                assert "type" in (await ws.receive_json(timeout=5))["message"]
                await ws.send_str('{"type": "end"}')
                assert (await ws.receive_json(timeout=5))["type"] == "ended"
        finally:
            await viewer.close()
        await asyncio.sleep(0)


async def test_malformed_requests_get_4xx_in_words_not_500() -> None:
    async with running_edge() as edge, aiohttp.ClientSession() as http:
        deep = "[" * 5_000 + "]" * 5_000  # deeper than Python's recursion limit, within the size limit
        async with http.post(f"{edge.url}/offer", data=deep, headers={"Content-Type": "application/json"}) as r:
            assert r.status == 400 and "JSON" in (await r.json())["error"]
        async with http.post(
            f"{edge.url}/whep/default", data=b"v=0\r\n\xff\xfe\r\nm=video", headers={"Content-Type": "application/sdp"}
        ) as r:
            assert r.status == 400 and "UTF-8" in (await r.json())["error"]
        viewer = await connect_viewer(http, edge.url)
        try:
            speech = f"{edge.url}/sessions/{viewer.session_id}/speech"
            broken = b'--xyz\r\nContent-Disposition: form-data; name="audio"\r\n\r\nRIFF'  # no closing boundary
            headers = {**viewer.auth(), "Content-Type": "multipart/form-data; boundary=xyz"}
            async with http.post(speech, data=broken, headers=headers) as r:
                assert r.status in (400, 422), await r.text()
            resource = f"{edge.url}/whep/sessions/{viewer.session_id}"
            trickle = {**viewer.auth(), "Content-Type": "application/trickle-ice-sdpfrag"}
            for fragment, reason in (
                ("a=mid:0\r\na=candidate:garbage\r\n", "bad candidate"),
                ("a=mid:nowhere\r\na=candidate:1 1 udp 1 127.0.0.1 9 typ host\r\n", "no media with mid"),
                ("a=mid:0\r\n" + "a=candidate:1 1 udp 1 127.0.0.1 9 typ host\r\n" * 40, "more than 32"),
            ):
                async with http.patch(resource, data=fragment, headers=trickle) as r:
                    assert r.status == 400 and reason in (await r.json())["error"]
        finally:
            await viewer.close()
