"""What the bench's clients do: join with known frame numbers, speak the utterance, interrupt it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aiohttp

from benchmarks.e2e import BenchError
from benchmarks.e2e.script import SpeechScript
from benchmarks.kit.mouth import MouthMeter
from benchmarks.kit.viewer import SessionHandle, Viewer, connect_viewer
from lipstream.timebase import FRAME_SECONDS

SETTLE_FRAMES = 25  # idle video each new client receives before a level starts
TAIL_FRAMES = 25  # frames watched after the interrupt
FRAME_WAIT_SLACK_S = 10.0  # beyond its due time, a frame that has not arrived fails the run


async def connect_clients(
    http: aiohttp.ClientSession, base: str, clients: list[Viewer], count: int, mouth: MouthMeter
) -> None:
    """Up to `count` clients, every one receiving video with known frame numbers.

    A client keeps only the mouth's crop of each frame, so a dozen of them fit in memory for a whole run.
    """
    while len(clients) < count:
        clients.append(await connect_viewer(http, base, keep=mouth.crop))
    await asyncio.gather(
        *(
            c.wait_frame(c.last_frame + SETTLE_FRAMES, SETTLE_FRAMES * FRAME_SECONDS + FRAME_WAIT_SLACK_S)
            for c in clients
        )
    )


@dataclass
class SessionRun:
    """The times the bench acted at (client clock) and the server's counters around them."""

    client: Viewer
    sent: float
    accepted: float
    start: int  # session frame of the utterance's first frame
    interrupted: float
    late_frames: int
    speaking_frames: int
    stages_ms: dict[str, float]  # the server's medians over its last frames: inference, composite, encode


async def session_state(http: aiohttp.ClientSession, client: SessionHandle) -> dict:
    """GET /sessions/{id}: the session's state and stats."""
    async with http.get(f"{client.base}/sessions/{client.session_id}", headers=client.auth()) as response:
        if response.status != 200:
            raise BenchError(f"GET /sessions answered {response.status}: {await response.text()}")
        return await response.json()


async def speak_and_interrupt(
    http: aiohttp.ClientSession, client: Viewer, utterance: SpeechScript, delays_s: tuple[float, float]
) -> SessionRun:
    """Upload the utterance, interrupt it in its sustained vowel, watch the return to idle.

    `delays_s` are waited before the upload and before the interrupt: random fractions of a
    frame, so that requests do not always land just after a frame, as a user's would not.
    """
    loop = asyncio.get_running_loop()
    session = f"{client.base}/sessions/{client.session_id}"
    await asyncio.sleep(delays_s[0])
    before = (await session_state(http, client))["stats"]
    sent = loop.time()
    async with http.post(
        f"{session}/speech", data=utterance.audio, headers={**client.auth(), "Content-Type": "audio/wav"}
    ) as response:
        if response.status != 202:
            raise BenchError(f"POST speech answered {response.status}: {await response.text()}")
        accepted = loop.time()
        start = int((await response.json())["starts_at_frame"])
    wait_s = (utterance.interrupt_index + start - client.last_frame) * FRAME_SECONDS + FRAME_WAIT_SLACK_S
    await client.wait_frame(start + utterance.interrupt_index, wait_s)
    await asyncio.sleep(delays_s[1])
    interrupted = loop.time()
    async with http.post(f"{session}/interrupt", headers=client.auth()) as response:
        if response.status != 200:
            raise BenchError(f"POST interrupt answered {response.status}: {await response.text()}")
    await client.wait_frame(client.last_frame + TAIL_FRAMES, TAIL_FRAMES * FRAME_SECONDS + FRAME_WAIT_SLACK_S)
    after = (await session_state(http, client))["stats"]
    late, speaking = (after[key] - before[key] for key in ("late_frames", "speaking_frames"))
    return SessionRun(client, sent, accepted, start, interrupted, late, speaking, after["stages_ms"])
