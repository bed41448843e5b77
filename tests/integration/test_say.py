"""Text to speech into live sessions, and the events apps follow them by: real espeak-ng, a real
OpenAI-compatible HTTP server answering with espeak-ng audio, a real aiortc viewer."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import numpy as np
import pytest
from edge_helpers import motion_around_speech_start, mouth_motion, running_edge, wait_for, watched_edge
from tts_server import speech_server

from benchmarks.kit.viewer import Viewer, connect_viewer

KEY_VARIABLE = "LIPSTREAM_TEST_SPEECH_KEY"
SENTENCE = "Hello, I am a talking avatar, and I speak whatever text you send me."


async def say(http: aiohttp.ClientSession, url: str, viewer: Viewer, **body: Any) -> tuple[int, dict]:
    async with http.post(f"{url}/sessions/{viewer.session_id}/say", json=body, headers=viewer.auth()) as response:
        return response.status, await response.json()


def events_of(viewer: Viewer, kind: str, utterance: int | None = None) -> list[dict]:
    return [e for e in viewer.events if e["type"] == kind and (utterance is None or e.get("utterance") == utterance)]


async def test_say_speaks_espeak_ng_as_it_is_synthesized_and_the_lips_move() -> None:
    async with watched_edge() as (edge, http, viewer, avatar):
        async with http.get(f"{edge.url}/voices") as response:
            listing = await response.json()
        espeak = listing["engines"]["espeak-ng"]
        assert listing["default_engine"] == "espeak-ng" and espeak["available"]
        assert {"id": "en-us", "name": "English (America)", "language": "en-us", "gender": "male"} in espeak["voices"]
        assert "f3" in espeak["variants"]
        assert not listing["engines"]["openai"]["available"] and "base_url" in listing["engines"]["openai"]["reason"]

        status, accepted = await say(http, edge.url, viewer, text=SENTENCE, voice="en-us+f3")
        assert status == 202, accepted
        assert accepted["engine"] == "espeak-ng" and accepted["voice"] == "en-us+f3"
        utterance = accepted["utterance"]
        await wait_for(lambda: events_of(viewer, "speech_end", utterance), 20, "the sentence to end")
        start = events_of(viewer, "speech_start", utterance)[0]
        end = events_of(viewer, "speech_end", utterance)[0]
        assert end["interrupted"] is False and end["played_ms"] > 3000  # the whole sentence, about 4 s
        assert start["queued_ms"] == 0 and start["lead_ms"] <= 8 * 40  # pipeline lead and look-ahead only
        before, speaking = motion_around_speech_start(avatar, viewer, frames=(end["frame"] - start["frame"]))
        assert before.max() < 4 and np.percentile(speaking, 90) > 12, "the text did not move the lips"


async def test_bad_say_requests_are_refused_in_words() -> None:
    tts = {"max_chars": 40, "espeak": {"program": "espeak-ng"}}
    async with running_edge(tts=tts) as edge, aiohttp.ClientSession() as http:
        viewer = await connect_viewer(http, edge.url)
        try:
            cases = [
                ({"text": ""}, 400, "non-empty"),
                ({"text": "   "}, 400, "non-empty"),
                ({"voice": "en-us"}, 400, "non-empty"),
                ({"text": "x" * 41}, 413, "at most 40"),
                ({"text": "hello", "voice": "xx-nowhere"}, 400, "no voice 'xx-nowhere'"),
                ({"text": "hello", "voice": "en-us+nobody"}, 400, "no variant 'nobody'"),
                ({"text": "hello", "engine": "festival"}, 400, "unknown engine 'festival'"),
                ({"text": "hello", "engine": "openai"}, 400, "tts.openai.base_url"),
                ({"text": "hello \ud800"}, 400, "not valid Unicode"),
                ({"text": "hello", "voice": 3}, 400, "must be strings"),
            ]
            for body, status, words in cases:
                answer, reply = await say(http, edge.url, viewer, **body)
                assert (answer, words in reply["error"]) == (status, True), (body, reply)
            async with http.post(
                f"{edge.url}/sessions/{viewer.session_id}/say", data="hello", headers=viewer.auth()
            ) as response:
                assert response.status == 415
            async with http.post(f"{edge.url}/sessions/{viewer.session_id}/say", json={"text": "hello"}) as response:
                assert response.status == 403
            assert edge.edge.tts._running == 0 and not edge.edge.sessions[viewer.session_id].speaking
        finally:
            await viewer.close(http)


async def test_without_an_engine_say_answers_503_with_what_to_install() -> None:
    async with (
        running_edge(tts={"espeak": {"program": "/nonexistent/espeak-ng"}}) as edge,
        aiohttp.ClientSession() as http,
    ):
        viewer = await connect_viewer(http, edge.url)
        try:
            status, reply = await say(http, edge.url, viewer, text="hello")
            assert status == 503 and "apt-get install espeak-ng" in reply["error"]
            async with http.get(f"{edge.url}/voices") as response:
                assert not (await response.json())["engines"]["espeak-ng"]["available"]
        finally:
            await viewer.close(http)


async def test_openai_compatible_engine_streams_and_survives_a_failing_or_hanging_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(KEY_VARIABLE, "sk-test-key")
    async with speech_server() as server:
        tts = {
            "engine": "openai",
            "stall_timeout_s": 1.0,
            "openai": {
                "base_url": server.url,
                "api_key_env": KEY_VARIABLE,
                "voices": ["alloy", "hang", "broken", "refuse"],
                "response_format": "pcm",
                "pcm_sample_rate": 22050,
            },
        }
        async with watched_edge(tts=tts) as (edge, http, viewer, avatar):
            session = edge.edge.sessions[viewer.session_id]
            status, spoken = await say(http, edge.url, viewer, text=SENTENCE)
            assert status == 202 and spoken["engine"] == "openai" and spoken["voice"] == "alloy"
            await wait_for(lambda: events_of(viewer, "speech_end", spoken["utterance"]), 20, "the speech to end")
            assert server.authorizations == ["Bearer sk-test-key"]

            # A server that stops sending: the utterance ends where its audio stopped, an event says why.
            status, hung = await say(http, edge.url, viewer, text=SENTENCE, voice="hang")
            assert status == 202
            await wait_for(lambda: events_of(viewer, "speech_end", hung["utterance"]), 10, "the hung speech to end")
            frames_then = len(viewer.video_frames)
            # A server that drops the connection mid-stream.
            status, broken = await say(http, edge.url, viewer, text=SENTENCE, voice="broken")
            assert status == 202
            await wait_for(lambda: events_of(viewer, "speech_end", broken["utterance"]), 10, "the broken speech")
            # A server that refuses: the request fails with its reason, nothing is queued.
            status, refused = await say(http, edge.url, viewer, text=SENTENCE, voice="refuse")
            assert status == 502 and "the model is overloaded" in refused["error"]
            # WAV, and the session goes on speaking after all that.
            edge.edge.tts.config.openai.response_format = "wav"
            status, again = await say(http, edge.url, viewer, text="Still here.")
            assert status == 202
            await wait_for(lambda: events_of(viewer, "speech_end", again["utterance"]), 10, "the last speech")
        assert len(viewer.video_frames) > frames_then + 25, "the session kept streaming"
        assert edge.edge.tts._running == 0, "every synthesis was closed"
        for failed in (hung, broken):
            (error,) = events_of(viewer, "tts_error", failed["utterance"])
            assert error["engine"] == "openai"
            (end,) = events_of(viewer, "speech_end", failed["utterance"])
            assert 300 <= end["played_ms"] <= 900, end  # the half second the server sent
        assert "sent nothing for 1 s" in events_of(viewer, "tts_error", hung["utterance"])[0]["message"]
        assert "broke off" in events_of(viewer, "tts_error", broken["utterance"])[0]["message"]
        motion = mouth_motion(avatar, viewer.video_frames)
        first = events_of(viewer, "speech_start", spoken["utterance"])[0]["frame"]
        last = events_of(viewer, "speech_end", spoken["utterance"])[0]["frame"]
        assert np.percentile(motion[first:last], 90) > 12, "the server's speech did not move the lips"
        assert not session.speaking


async def test_interrupting_speech_stops_the_engine_and_events_reach_apps() -> None:
    async with running_edge() as edge, aiohttp.ClientSession() as http:
        viewer = await connect_viewer(http, edge.url)
        base = f"{edge.url}/sessions/{viewer.session_id}"
        try:
            await wait_for(lambda: len(viewer.video_frames) >= 10, 20, "idle video")
            async with http.ws_connect(f"{base}/events") as ws:  # no token
                assert (await ws.receive()).type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        except aiohttp.WSServerHandshakeError as refused:
            assert refused.status == 403
        try:
            header_ws = await http.ws_connect(f"{base}/events", headers=viewer.auth())
            query_ws = await http.ws_connect(f"{base}/events?token={viewer.token}")
            long_text = " ".join([SENTENCE] * 6)
            status, first = await say(http, edge.url, viewer, text=long_text)
            status2, second = await say(http, edge.url, viewer, text=SENTENCE)
            assert (status, status2) == (202, 202)
            await wait_for(lambda: events_of(viewer, "speech_start", first["utterance"]), 10, "speech")
            await asyncio.sleep(1.0)
            async with http.post(f"{base}/interrupt", headers=viewer.auth()) as response:
                assert (await response.json())["dropped_utterances"] == 2
            await wait_for(lambda: edge.edge.tts._running == 0, 5, "the engines to be stopped")

            received: list[dict] = []
            while not any(e["type"] == "interrupted" and e["utterance"] == second["utterance"] for e in received):
                received.append(await asyncio.wait_for(header_ws.receive_json(), 5))
            kinds = [e["type"] for e in received]
            assert "stats" in kinds and "speech_start" in kinds
            cut = next(e for e in received if e["type"] == "speech_end" and e["utterance"] == first["utterance"])
            assert cut["interrupted"] is True and 500 <= cut["played_ms"] <= 3000
            never = next(e for e in received if e["type"] == "interrupted" and e["utterance"] == second["utterance"])
            assert never["played_ms"] == 0
            assert (await asyncio.wait_for(query_ws.receive_json(), 5))["type"] in {"stats", "speech_start"}

            async with http.delete(base, headers=viewer.auth()) as response:
                assert response.status == 200
            for ws in (header_ws, query_ws):  # the stream ends with the session
                while (message := await asyncio.wait_for(ws.receive(), 5)).type == aiohttp.WSMsgType.TEXT:
                    json.loads(message.data)
                assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
                await ws.close()
        finally:
            await viewer.close()
        await wait_for(
            lambda: not [t for t in asyncio.all_tasks() if viewer.session_id[:8] in t.get_name()], 5, "tasks"
        )
