"""lipstream.client against a real edge: every call an app makes, its typed errors, and its lightness."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from edge_helpers import motion_around_speech_start, running_edge, wait_for, watched_edge

from benchmarks.kit.speech import encode, s16, voiced_bursts
from lipstream.client import BadRequest, Forbidden, Lipstream, LipstreamError, NotFound, Unreachable

ROOT = Path(__file__).resolve().parents[2]
# What an agent's process must not need: the server's heavy dependencies.
HEAVY = ["numpy", "av", "aiortc", "grpc", "google.protobuf", "onnx", "onnxruntime", "cv2", "yaml", "pydantic"]


def test_the_client_imports_with_only_aiohttp() -> None:
    """In a process where every heavy module fails to import, the client still imports."""
    script = f"""
import importlib.abc, sys
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if any(name == heavy or name.startswith(heavy + ".") for heavy in {HEAVY!r}):
            raise ImportError(f"{{name}} is blocked: the client must not need it")
sys.meta_path.insert(0, Refuse())
import lipstream.client
from lipstream.client import Lipstream, Session, LiveStream, ApiError
print(sorted(m for m in sys.modules if m.split('.')[0] in ('media_server', 'signaling', 'inference_service', 'protos')))
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


async def test_an_app_drives_a_session_through_the_client(tmp_path: Path) -> None:
    async with watched_edge() as (edge, _, viewer, avatar), Lipstream(edge.url) as api:
        session = api.attach(viewer.session_id, viewer.token)
        events: list[dict] = []

        async def follow() -> None:
            async for event in session.events():
                events.append(event)

        def saw(kind: str, utterance: int) -> bool:
            return any(e["type"] == kind and e.get("utterance") == utterance for e in events)

        follower = asyncio.create_task(follow())
        try:
            assert (await api.voices())["engines"]["espeak-ng"]["available"]
            assert "default" in (await api.avatars())["avatars"]
            assert (await api.health())["status"] == "ok"

            # Live PCM, as a streaming TTS sends it: the lips move, the utterance ends.
            rate = 24000
            pcm = s16(voiced_bursts(2.0, rate=rate)).tobytes()
            async with session.stream(rate) as stream:
                for offset in range(0, len(pcm), 4800):
                    await stream.write(pcm[offset : offset + 4800])
                    await asyncio.sleep(0.1)
                streamed = await stream.end()
            assert isinstance(streamed, int)
            await wait_for(lambda: saw("speech_end", streamed), 10, "the streamed speech to end")

            # A file by path, then text; state while it speaks; an interrupt.
            path = tmp_path / "speech.wav"
            path.write_bytes(encode(voiced_bursts(6.0)))
            accepted = await session.speak(path)
            said = await session.say("And then I say this sentence.", voice="en-us+f3")
            assert said["engine"] == "espeak-ng" and said["utterance"] > accepted["utterance"]
            await wait_for(lambda: saw("speech_start", accepted["utterance"]), 5, "the file to start")
            state = await session.state()
            assert state["session_id"] == session.id and state["speaking"] and state["queued_seconds"] > 1
            assert await session.interrupt() == 2
            await wait_for(lambda: saw("interrupted", said["utterance"]), 5, "the text to be dropped")
            assert any(e["type"] == "stats" for e in events)

            # Typed errors that carry the edge's status and words.
            with pytest.raises(BadRequest) as bad:
                await session.say("")
            assert bad.value.status == 400 and "non-empty" in bad.value.message
            with pytest.raises(Forbidden) as forbidden:
                await api.attach(session.id, "wrong-token").state()
            assert forbidden.value.status == 403
            with pytest.raises(BadRequest, match="base_url"):
                await session.say("hello", engine="openai")
            with pytest.raises(LipstreamError, match="bad stream header"):
                await session.stream(1).open()

            await session.close()
            await asyncio.wait_for(follower, 5)  # the events end with the session
            with pytest.raises(NotFound):
                await session.state()
        finally:
            follower.cancel()
        before, speaking = motion_around_speech_start(avatar, viewer, frames=40)
        assert before.max() < 4 and np.percentile(speaking, 90) > 12


async def test_the_client_creates_a_session_from_an_offer_and_says_when_the_edge_is_gone() -> None:
    async with running_edge() as edge, Lipstream(edge.url) as api:
        pc = RTCPeerConnection()
        pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        try:
            created = await api.create(pc.localDescription.sdp)
            await pc.setRemoteDescription(RTCSessionDescription(created.answer_sdp, "answer"))
            assert created.session.id in edge.edge.sessions
            assert (await created.session.state())["avatar"] == "default"
            await created.session.close()
        finally:
            await pc.close()
        url = edge.url
    async with Lipstream(url) as gone:
        with pytest.raises(Unreachable):
            await gone.voices()
