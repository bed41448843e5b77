"""Edge workers behind one port, as a user runs them: `lipstream serve --workers 2`, real aiortc viewers.

Sessions land on different workers and are controlled, spoken to and ended through the one port;
a killed worker is restarted while the other's sessions stream on; SIGTERM drains.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess

import aiohttp
import numpy as np
import psutil
import pytest
from edge_helpers import until
from process_helpers import health_is, serving

from benchmarks.kit.mouth import MouthMeter
from benchmarks.kit.speech import encode, s16, voiced_bursts
from benchmarks.kit.viewer import Viewer, connect_viewer
from media_server.avatars.bundled import ensure_bundled_avatar
from media_server.avatars.store import FrameStore

START_S = 120.0


async def get_json(http: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    async with http.get(url, headers=headers) as response:
        return response.status, await response.json()


async def frames_of(viewer: Viewer) -> int:
    return len(viewer.video_frames)


def worker_pids(health: dict) -> dict[int, int]:
    return {entry["worker"]: entry["pid"] for entry in health["workers"]}


def lips_moved(viewer: Viewer, since: int) -> float:
    """The 90th percentile of mouth motion over the frames decoded since index `since`."""
    meter = MouthMeter(FrameStore().get(ensure_bundled_avatar()))
    return float(
        np.percentile([meter(viewer.frame_of(f.pts), meter.crop(f.image)) for f in viewer.video_frames[since:]], 90)
    )


async def speak_live(http: aiohttp.ClientSession, url: str, viewer: Viewer, seconds: float) -> dict:
    """Speech over the live PCM WebSocket, in real time, through the front."""
    stream = f"{url}/sessions/{viewer.session_id}/stream?token={viewer.token}"
    pcm = s16(voiced_bursts(seconds)).tobytes()
    async with http.ws_connect(stream) as ws:
        await ws.send_str(json.dumps({"sample_rate": 16000, "format": "s16le", "channels": 1}))
        assert (await ws.receive_json())["type"] == "ready"
        for offset in range(0, len(pcm), 3200):  # 100 ms
            await ws.send_bytes(pcm[offset : offset + 3200])
            await asyncio.sleep(0.1)
        await ws.send_str(json.dumps({"type": "end"}))
        return await ws.receive_json()


async def test_sessions_land_on_both_workers_and_are_served_through_the_one_port() -> None:
    with serving("--workers", "2") as (serve, url):
        async with aiohttp.ClientSession() as http:
            health = await health_is(http, url, 200, START_S)
            assert health["workers_up"] == 2
            offer = await connect_viewer(http, url)
            whep = await connect_viewer(http, url, whep=True)
            try:
                assert {offer.session_id[:3], whep.session_id[:3]} == {"w0.", "w1."}, "one session on each worker"
                await until(
                    lambda: get_json(http, f"{url}/health"), lambda r: r[1]["sessions"] == 2, "both counted", 10
                )
                _, health = await get_json(http, f"{url}/health")
                assert sorted(w["sessions"] for w in health["workers"]) == [1, 1]
                await until(lambda: frames_of(offer), lambda n: n >= 50 and offer.first_frame is not None, "video", 30)
                await until(lambda: frames_of(whep), lambda n: n >= 50, "WHEP video", 30)

                # The workers' media goes straight to the viewers: the front has no UDP socket, each worker has.
                front = psutil.Process(serve.pid)
                workers = [psutil.Process(pid) for pid in worker_pids(health).values()]
                assert not front.net_connections(kind="udp")
                assert all(worker.net_connections(kind="udp") for worker in workers)
                # ... and share one copy of the avatar's frames: both map the same file.
                mapped = [{m.path for m in worker.memory_maps() if m.path.endswith("frames.npy")} for worker in workers]
                assert mapped[0] and mapped[0] == mapped[1]

                # Each is spoken to (a file, and a live feed over the WebSocket) and controlled through the one port.
                mark = len(offer.video_frames)
                speech = f"{url}/sessions/{offer.session_id}/speech"
                async with http.post(speech, data=encode(voiced_bursts(2.0)), headers=offer.auth()) as response:
                    assert response.status == 202, await response.text()
                assert (await speak_live(http, url, whep, 1.5))["type"] == "ended"
                await until(
                    lambda: get_json(http, f"{url}/sessions/{whep.session_id}", whep.auth()),
                    lambda r: r[1]["stats"]["speaking_frames"] >= 30,
                    "the live speech to play",
                    10,
                )
                await until(lambda: frames_of(offer), lambda n: n >= mark + 75, "the file's speech to play", 20)
                assert lips_moved(offer, mark) > 12
                async with http.post(f"{url}/sessions/{offer.session_id}/interrupt", headers=offer.auth()) as response:
                    assert response.status == 200
                async with http.get(f"{url}/sessions/{offer.session_id}", headers=whep.auth()) as response:
                    assert response.status == 403, "one session's token does not control another's"

                # One scrape sees both workers' series.
                async with http.get(f"{url}/metrics") as response:
                    text = await response.text()
                assert re.search(r'lipstream_edge_sessions\{worker="0"\} 1\.0', text)
                assert re.search(r'lipstream_edge_sessions\{worker="1"\} 1\.0', text)
                assert 'lipstream_edge_worker_up{worker="1"} 1.0' in text

                async with http.delete(f"{url}/sessions/{offer.session_id}", headers=offer.auth()) as response:
                    assert response.status == 200
                async with http.delete(f"{url}/whep/sessions/{whep.session_id}", headers=whep.auth()) as response:
                    assert response.status == 200
                for viewer in (offer, whep):
                    status, _ = await get_json(http, f"{url}/sessions/{viewer.session_id}", viewer.auth())
                    assert status == 404
                await until(lambda: get_json(http, f"{url}/health"), lambda r: r[1]["sessions"] == 0, "no sessions", 10)
            finally:
                await offer.close()
                await whep.close()


async def test_a_killed_worker_is_restarted_and_the_other_workers_sessions_stream_on() -> None:
    with serving("--workers", "2") as (_, url):
        async with aiohttp.ClientSession() as http:
            await health_is(http, url, 200, START_S)
            survivor, victim = await connect_viewer(http, url), await connect_viewer(http, url)
            try:
                await until(lambda: frames_of(survivor), lambda n: n >= 25, "video", 30)
                await until(lambda: frames_of(victim), lambda n: n >= 25, "video", 30)
                _, health = await get_json(http, f"{url}/health")
                owner = int(victim.session_id[1])
                psutil.Process(worker_pids(health)[owner]).kill()
                killed_at = len(survivor.video_frames)
                await asyncio.sleep(2.0)
                arrivals = np.array([f.decoded for f in survivor.video_frames[killed_at - 5 :]])
                assert len(arrivals) >= 40 and np.diff(arrivals).max() < 0.5, "the other worker's session stalled"

                status, body = await get_json(http, f"{url}/sessions/{victim.session_id}", victim.auth())
                assert status == 404 and body["error"].startswith("no such session on this edge")
                health = await until(
                    lambda: get_json(http, f"{url}/health"),
                    lambda r: r[1]["workers_up"] == 2 and r[1]["workers"][owner]["restarts"] == 1,
                    "the worker to be restarted",
                    30,
                )
                assert health[1]["sessions"] == 1
                status, _ = await get_json(http, f"{url}/sessions/{victim.session_id}", victim.auth())
                assert status == 404, "the restarted worker knows nothing of the old sessions"
                stopped_at = len(victim.video_frames)
                await asyncio.sleep(1.0)
                assert len(victim.video_frames) == stopped_at, "the dead worker's session still streams"

                # The survivor is still served, and a new session goes to the restarted (empty) worker.
                speech = f"{url}/sessions/{survivor.session_id}/speech"
                async with http.post(speech, data=encode(voiced_bursts(1.0)), headers=survivor.auth()) as response:
                    assert response.status == 202
                newcomer = await connect_viewer(http, url)
                assert newcomer.session_id.startswith(f"w{owner}.")
                await until(lambda: frames_of(newcomer), lambda n: n >= 25, "the new session's video", 30)
                await newcomer.close(http)
            finally:
                await survivor.close(http)
                await victim.close()


@pytest.mark.parametrize("workers", [1, 2])
async def test_sigterm_drains_new_sessions_refused_running_ones_finish_exit_zero(workers: int) -> None:
    drain_s = 4.0
    env = {"LIPSTREAM_EDGE_SESSIONS__DRAIN_TIMEOUT_S": str(drain_s)}
    with serving("--workers", str(workers), env=env) as (serve, url):
        async with aiohttp.ClientSession() as http:
            await health_is(http, url, 200, START_S)
            viewer = await connect_viewer(http, url)
            try:
                await until(lambda: frames_of(viewer), lambda n: n >= 25, "video", 30)
                serve.send_signal(signal.SIGTERM)
                signalled = asyncio.get_running_loop().time()
                await asyncio.sleep(0.5)
                async with http.post(f"{url}/offer", json={"sdp": "v=0\r\nm=video 9", "type": "offer"}) as response:
                    assert response.status == 503 and response.headers["Retry-After"] == "5"
                    assert "draining" in (await response.json())["error"]
                status, body = await get_json(http, f"{url}/health")
                assert status == 503 and body["status"] == "draining"
                # The running session goes on while the edge drains ...
                count = len(viewer.video_frames)
                await asyncio.sleep(2.0)
                assert len(viewer.video_frames) >= count + 40
                state, _ = await get_json(http, f"{url}/sessions/{viewer.session_id}", viewer.auth())
                assert state == 200
                # ... and is closed at the drain timeout; the process exits 0.
                code = await asyncio.get_running_loop().run_in_executor(None, serve.wait, drain_s + 20)
                assert code == 0
                assert asyncio.get_running_loop().time() - signalled >= drain_s - 0.5, "it did not wait for the session"
            except subprocess.TimeoutExpired:
                pytest.fail("the edge did not exit after draining")
            finally:
                await viewer.close()
