"""One session cycle each, by how it ends: the four ways a session leaves the edge.

Every cycle but the last kind connects a real viewer (`benchmarks.kit.viewer`), receives video
and speaks a short utterance; then `offer_delete` ends with DELETE /sessions/{id},
`whep_delete` with DELETE /whep/sessions/{id} mid-utterance, `peer_close` hangs up without a
word to the edge (which must notice), and `never_answered` posts an offer and never applies
the answer (the edge's connect timeout must end it).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, NamedTuple

import aiohttp
import numpy as np
from aiortc import RTCPeerConnection

from benchmarks.e2e import BenchError
from benchmarks.kit.viewer import SessionHandle, Viewer, ViewerError, connect_viewer
from lipstream.timebase import FRAME_SECONDS
from media_server.avatars.catalogue import BUNDLED_AVATAR

KINDS = ("offer_delete", "whep_delete", "peer_close", "never_answered")
FIRST_FRAMES = 5  # video frames a viewer receives before it speaks
FRAME_SLACK_S = 15.0  # beyond their due time, frames that have not arrived fail the cycle
GONE_TIMEOUT_S = 90.0  # a session the edge keeps longer than this after its end fails the cycle
POLL_S = 0.1
ADMISSION_TRIES = 60  # 503 answers (server full, too many connecting, overloaded) waited out
ADMISSION_WAIT_S = 0.5  # shorter than the Retry-After the edge suggests: the bench knows its own load
_NO_PIXELS = np.zeros((0, 0), np.uint8)
REFUSALS = {"server full": "full", "still connecting": "connecting", "overloaded": "overloaded"}  # 503 -> reason


class Cycle(NamedTuple):
    """What one cycle did: its kind, its duration, how long the edge took to drop the session after
    the client let go (peer_close, never_answered), video frames received, 503s waited out."""

    number: int
    kind: str
    seconds: float
    gone_after_s: float | None
    frames: int
    refusals: list[str]  # why each 503 before the session was admitted (REFUSALS)


def no_pixels(luma: np.ndarray) -> np.ndarray:
    """A viewer's `keep` that keeps nothing: a soak counts frames, it does not look at them."""
    return _NO_PIXELS


async def wait_frames(viewer: Viewer, count: int, timeout_s: float) -> None:
    """Until the viewer has decoded `count` video frames in all."""

    async def arrived() -> None:
        while len(viewer.video_frames) < count:
            viewer.changed.clear()
            await viewer.changed.wait()

    try:
        await asyncio.wait_for(arrived(), timeout_s)
    except TimeoutError:
        raise BenchError(
            f"session {viewer.session_id[:8]}: {len(viewer.video_frames)} of {count} frames within {timeout_s:.0f} s"
        ) from None


async def speak(http: aiohttp.ClientSession, viewer: SessionHandle, audio: bytes) -> dict[str, Any]:
    """Upload a WAV utterance; the edge's answer (its `frames`, `starts_at_frame` ...)."""
    url = f"{viewer.base}/sessions/{viewer.session_id}/speech"
    async with http.post(url, data=audio, headers={**viewer.auth(), "Content-Type": "audio/wav"}) as response:
        if response.status != 202:
            raise BenchError(f"POST speech answered {response.status}: {await response.text()}")
        return dict(await response.json())


async def gone_after(http: aiohttp.ClientSession, base: str, session_id: str, token: str) -> float:
    """Seconds until GET /sessions/{id} answers 404: the edge has dropped the session."""
    started = time.monotonic()
    while time.monotonic() - started < GONE_TIMEOUT_S:
        async with http.get(f"{base}/sessions/{session_id}", headers={"Authorization": f"Bearer {token}"}) as r:
            if r.status == 404:
                return time.monotonic() - started
            if r.status != 200:
                raise BenchError(f"GET /sessions/{session_id[:8]} answered {r.status}: {await r.text()}")
        await asyncio.sleep(POLL_S)
    raise BenchError(f"session {session_id[:8]} still on the edge {GONE_TIMEOUT_S:g} s after its end")


async def _delete(http: aiohttp.ClientSession, url: str, viewer: Viewer) -> None:
    async with http.delete(url, headers=viewer.auth()) as response:
        if response.status != 200:
            raise BenchError(f"DELETE {url.split('/', 3)[-1]} answered {response.status}: {await response.text()}")


async def _unanswered(http: aiohttp.ClientSession, base: str) -> tuple[str, str]:
    """POST /offer as the demo page would, then drop the answer; the session's id and token."""
    pc = RTCPeerConnection()
    try:
        pc.addTransceiver("video", direction="recvonly")
        pc.addTransceiver("audio", direction="recvonly")
        pc.createDataChannel("stats")
        await pc.setLocalDescription(await pc.createOffer())
        body = {"sdp": pc.localDescription.sdp, "type": "offer", "avatar": BUNDLED_AVATAR}
        async with http.post(f"{base}/offer", json=body) as response:
            if response.status != 200:
                raise ViewerError(f"POST /offer answered {response.status}: {await response.text()}")
            answer = await response.json()
    finally:
        await pc.close()
    return answer["session_id"], answer["token"]


async def _admitted(http: aiohttp.ClientSession, base: str, kind: str) -> tuple[Viewer | tuple[str, str], list[str]]:
    """The new session (a viewer, or the id and token of an unanswered offer) and the 503s before it."""
    refusals: list[str] = []
    while len(refusals) < ADMISSION_TRIES:
        try:
            if kind == "never_answered":
                return await _unanswered(http, base), refusals
            return await connect_viewer(http, base, whep=kind == "whep_delete", keep=no_pixels), refusals
        except ViewerError as exc:
            if "answered 503" not in str(exc):
                raise
            refusals.append(next((why for text, why in REFUSALS.items() if text in str(exc)), "other"))
        await asyncio.sleep(ADMISSION_WAIT_S)
    raise BenchError(f"the edge refused a new session {ADMISSION_TRIES} times in a row")


async def run_cycle(http: aiohttp.ClientSession, base: str, index: int, audio: bytes) -> Cycle:
    """Cycle `index`, of kind KINDS[index % 4]."""
    kind, started = KINDS[index % len(KINDS)], time.monotonic()
    opened, refusals = await _admitted(http, base, kind)
    if isinstance(opened, tuple):
        gone = await gone_after(http, base, *opened)
        return Cycle(index, kind, time.monotonic() - started, round(gone, 3), 0, refusals)
    viewer, gone_s = opened, None
    try:
        await wait_frames(viewer, FIRST_FRAMES, FRAME_SLACK_S)
        frames = int((await speak(http, viewer, audio))["frames"])
        heard = len(viewer.video_frames)
        if kind == "offer_delete":  # the whole utterance, then the end
            await wait_frames(viewer, heard + frames, frames * FRAME_SECONDS + FRAME_SLACK_S)
            await _delete(http, f"{base}/sessions/{viewer.session_id}", viewer)
        elif kind == "whep_delete":  # mid-utterance
            await wait_frames(viewer, heard + frames // 2, frames * FRAME_SECONDS + FRAME_SLACK_S)
            await _delete(http, f"{base}/whep/sessions/{viewer.session_id}", viewer)
        else:  # peer_close: mid-utterance, and the edge is told nothing
            await wait_frames(viewer, heard + frames // 2, frames * FRAME_SECONDS + FRAME_SLACK_S)
            await viewer.close()
            gone_s = round(await gone_after(http, base, viewer.session_id, viewer.token), 3)
    finally:
        await viewer.close()  # the peer goes after the DELETE (or twice for peer_close: the second does nothing)
    return Cycle(index, kind, time.monotonic() - started, gone_s, len(viewer.video_frames), refusals)
