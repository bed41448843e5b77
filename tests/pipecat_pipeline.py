"""A real Pipecat pipeline with lipstream's processor, run by tests/integration/test_pipecat.py in the
environment an agent has (pipecat-ai and aiohttp, none of the server's dependencies).

Usage: pipecat_pipeline.py EDGE_URL SESSION_ID TOKEN PCM_FILE SAMPLE_RATE. The PCM (s16le mono) is
said twice as TTS audio in 20 ms frames, in real time: the first time whole, ended by
TTSStoppedFrame; the second time cut by an InterruptionFrame after a second. Prints one JSON line:
the frames sent, the frames that came out of the pipeline, and any errors.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter
from pathlib import Path

from pipecat.frames.frames import (
    EndFrame,
    ErrorFrame,
    Frame,
    InterruptionFrame,
    StartFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.workers.runner import WorkerRunner

from lipstream.client import Lipstream
from lipstream.integrations.pipecat import LipstreamAvatar

FRAME_S = 0.02


class Sink(FrameProcessor):
    """The end of the pipeline: counts what reached it."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: Counter[str] = Counter()
        self.errors: list[str] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction == FrameDirection.DOWNSTREAM and not isinstance(frame, StartFrame):
            self.seen[type(frame).__name__] += 1
        if isinstance(frame, ErrorFrame):
            self.errors.append(frame.error)
        await self.push_frame(frame, direction)


async def main(url: str, session_id: str, token: str, pcm: bytes, rate: int) -> dict:
    chunk = int(rate * FRAME_S) * 2
    audio = [pcm[i : i + chunk] for i in range(0, len(pcm), chunk)]
    async with Lipstream(url) as api:
        avatar = LipstreamAvatar(api.attach(session_id, token))
        sink = Sink()
        worker = PipelineWorker(Pipeline([avatar, sink]), cancel_on_idle_timeout=False, enable_rtvi=False)
        started = asyncio.Event()
        sent: Counter[str] = Counter()
        marks: dict[str, float] = {}

        @worker.event_handler("on_pipeline_started")
        async def _started(worker: PipelineWorker, frame: StartFrame) -> None:
            started.set()

        async def send(frame: Frame) -> None:
            sent[type(frame).__name__] += 1
            await worker.queue_frame(frame)

        async def say(cut_after_s: float | None) -> None:
            await send(TTSStartedFrame())
            for index, piece in enumerate(audio):
                if cut_after_s is not None and index * FRAME_S >= cut_after_s:
                    marks["interrupt_sent"] = asyncio.get_running_loop().time()
                    await send(InterruptionFrame())
                    return
                await send(TTSAudioRawFrame(audio=piece, sample_rate=rate, num_channels=1))
                await asyncio.sleep(FRAME_S)
            await send(TTSStoppedFrame())

        async def script() -> None:
            await asyncio.wait_for(started.wait(), 10)
            await say(None)
            await asyncio.sleep(len(pcm) / 2 / rate + 1.0)  # it plays out
            await say(1.0)
            await asyncio.sleep(1.5)
            await send(EndFrame())

        runner = WorkerRunner()
        await runner.add_workers(worker)
        await asyncio.gather(runner.run(), script())
    return {"sent": sent, "passed": sink.seen, "errors": sink.errors}


if __name__ == "__main__":
    edge_url, session, session_token, pcm_file, sample_rate = sys.argv[1:6]
    result = asyncio.run(main(edge_url, session, session_token, Path(pcm_file).read_bytes(), int(sample_rate)))
    print(json.dumps(result))
