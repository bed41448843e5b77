"""The dynamic batcher's frame skipping: late frames are skipped, but one slow run never locks frames out."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from inference_service.config import BatchingConfig
from inference_service.runtime.batcher import Batcher, FrameExpired


class Runner:
    """Model runs that take the given times, in order, then `then_s` each."""

    def __init__(self, durations_s: list[float], then_s: float) -> None:
        self.durations_s = list(durations_s)
        self.then_s = then_s
        self.runs = 0

    def __call__(self, payloads: list[int]) -> list[int]:
        time.sleep(self.durations_s.pop(0) if self.durations_s else self.then_s)
        self.runs += 1
        return payloads


@pytest.mark.parametrize("before", [0, 5], ids=["at-start", "in-steady-state"])
async def test_one_stretched_run_does_not_lock_out_the_frames_after_it(before: int) -> None:
    """A run spanning a pause (the process stopped for seconds) says nothing of the next one."""
    runner = Runner([0.002] * before + [0.5], then_s=0.002)
    with ThreadPoolExecutor(1) as executor:
        batcher: Batcher[int, int] = Batcher("m", runner, BatchingConfig(max_batch=1), executor)
        try:
            for frame in range(before + 1):
                await batcher.submit(frame, time.perf_counter(), None)
            for frame in range(before + 1, before + 20):
                done = await batcher.submit(frame, time.perf_counter(), 0.1)  # budgets far above a fast run
                assert done.result == frame
        finally:
            await batcher.close()
    assert runner.runs == before + 20


async def test_a_stale_estimate_lets_a_frame_through_to_correct_itself() -> None:
    runner = Runner([0.3, 0.3, 0.3], then_s=0.002)
    with ThreadPoolExecutor(1) as executor:
        batcher: Batcher[int, int] = Batcher("m", runner, BatchingConfig(max_batch=1), executor)
        try:
            for frame in range(3):
                await batcher.submit(frame, time.perf_counter(), None)
            served = 0
            deadline = time.monotonic() + 8.0
            while served < 5 and time.monotonic() < deadline:
                try:
                    await batcher.submit(100, time.perf_counter(), 0.1)
                    served += 1
                except FrameExpired:
                    await asyncio.sleep(0.05)
            assert served == 5, "frames stayed locked out after the model sped up"
        finally:
            await batcher.close()


async def test_frames_whose_budget_is_shorter_than_a_run_are_skipped_not_computed() -> None:
    runner = Runner([], then_s=0.05)
    with ThreadPoolExecutor(1) as executor:
        batcher: Batcher[int, int] = Batcher("m", runner, BatchingConfig(max_batch=1), executor)
        try:
            for frame in range(3):
                await batcher.submit(frame, time.perf_counter(), None)
            with pytest.raises(FrameExpired, match="shorter than a model run"):
                await batcher.submit(9, time.perf_counter(), 0.01)
        finally:
            await batcher.close()
    assert runner.runs == 3
