"""lipstream's Pipecat processor in a real Pipecat pipeline, against a real edge watched by a real viewer.

pipecat-ai needs protobuf < 7 and brings the CPU onnxruntime, neither of which belongs next to the
server, so the pipeline runs where an agent would: its own Python environment with pipecat-ai and
lipstream installed without dependencies (`.ci/run` makes it at .venv-pipecat; LIPSTREAM_PIPECAT_PYTHON
names another). The processor reaches the edge over HTTP and WebSocket like any app.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import numpy as np
import pytest
from edge_helpers import mouth_motion, wait_for, watched_edge

from benchmarks.kit.voices import espeak
from media_server.speech.audio import PcmFormat, PcmResampler

ROOT = Path(__file__).resolve().parents[2]
PIPECAT_PYTHON = Path(os.environ.get("LIPSTREAM_PIPECAT_PYTHON", ROOT / ".venv-pipecat" / "bin" / "python"))
SCRIPT = ROOT / "tests" / "pipecat_pipeline.py"
TTS_RATE = 24000  # what Pipecat's TTS services commonly emit
SENTENCE = "Hello there. I am the face of your voice agent, and I stop the moment you speak."


def tts_pcm() -> bytes:
    """espeak-ng speech as a TTS service's 24 kHz s16 mono frames would carry it."""
    resampler = PcmResampler(PcmFormat(16000, "f32le"), TTS_RATE)
    samples = espeak("en-us", SENTENCE)
    out = np.concatenate([resampler.push(samples.tobytes()), resampler.flush()])
    return (np.clip(out, -1, 1) * 32767).astype("<i2").tobytes()


async def test_tts_frames_make_the_avatar_speak_and_an_interruption_silences_it(tmp_path: Path) -> None:
    if not PIPECAT_PYTHON.exists():
        pytest.fail(
            f"no Python with pipecat-ai at {PIPECAT_PYTHON}: python3 -m venv .venv-pipecat && "
            ".venv-pipecat/bin/pip install pipecat-ai && .venv-pipecat/bin/pip install --no-deps -e . "
            "(or set LIPSTREAM_PIPECAT_PYTHON)"
        )
    pcm_file = tmp_path / "tts.pcm"
    pcm_file.write_bytes(tts_pcm())
    async with watched_edge() as (edge, http, viewer, avatar):
        session = edge.edge.sessions[viewer.session_id]
        await wait_for(lambda: len(viewer.video_frames) >= 10 and viewer.first_frame is not None, 20, "video")
        speaking_before = session.stats.speaking_frames
        process = await asyncio.create_subprocess_exec(
            str(PIPECAT_PYTHON),
            str(SCRIPT),
            edge.url,
            viewer.session_id,
            viewer.token,
            str(pcm_file),
            str(TTS_RATE),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        out, err = await asyncio.wait_for(process.communicate(), 90)
        assert process.returncode == 0, err.decode()[-3000:]
        result = json.loads(out.decode().strip().splitlines()[-1])
        await asyncio.sleep(0.5)

    # Every frame was passed on, and lipstream raised no error in the pipeline.
    assert result["errors"] == []
    assert result["passed"] == result["sent"], result
    assert result["sent"]["InterruptionFrame"] == 1 and result["sent"]["TTSStoppedFrame"] == 1

    starts = [e for e in viewer.events if e["type"] == "speech_start"]
    ends = [e for e in viewer.events if e["type"] == "speech_end"]
    assert len(starts) == 2 and len(ends) == 2, [e for e in viewer.events if e["type"] != "stats"]
    first, second = ends
    assert first["interrupted"] is False and first["played_ms"] > 3000  # the whole sentence
    assert second["interrupted"] is True and 600 <= second["played_ms"] <= 1400  # cut after about a second
    assert session.stats.speaking_frames - speaking_before >= (first["played_ms"] + second["played_ms"]) / 40 - 4

    motion = mouth_motion(avatar, viewer.video_frames)
    frames = np.array([viewer.frame_of(f.pts) for f in viewer.video_frames])
    spoken = motion[(frames >= starts[0]["frame"]) & (frames < first["frame"])]
    assert np.percentile(spoken, 90) > 12, "the TTS frames did not move the lips"
    cut_at = second["frame"]
    assert motion[(frames >= cut_at - 10) & (frames < cut_at)].max() > 12, "speaking until the interruption"
    # Closed lips: the session's own encoder sends until the idle loop's next keyframe, and its frames carry the
    # codec's error at the bitrate the link allows at that moment (2-5 grey levels on a loaded loopback early in
    # an utterance); moving lips give over 12.
    after = motion[(frames > cut_at + 2) & (frames < cut_at + 25)]
    assert after.size >= 20 and after.max() < 6, f"still moving more than two frames after the interruption: {after}"
