"""Dynamic batching: frames from every stream of one model share model runs.

One collector task per (model, input kind) takes the first waiting frame, then
gathers more until `max_batch` or `max_queue_delay_us`, and hands the batch to
one of `workers` executor threads (onnxruntime releases the GIL while it runs).
The queue is bounded: a full queue refuses a frame at once (BatchQueueFull) instead of
letting latency grow. Batches leave in arrival order, so each stream's frames
complete in the order it sent them. With a single caller there is no one to
wait for, so the delay window is skipped and a lone stream pays no batching
latency.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Generic, NamedTuple, TypeVar

from inference_service.config import BatchingConfig

log = logging.getLogger(__name__)

RUN_HISTORY = 15
MIN_RUNS_FOR_ESTIMATE = 3
ESTIMATE_TRUSTED_S = 1.0

Payload = TypeVar("Payload")
Result = TypeVar("Result")


class BatchQueueFull(RuntimeError):
    """The model's queue holds `queue_size` frames already: the frame is refused at once."""


class FrameExpired(RuntimeError):
    """The frame's budget ran out before (or would run out during) its model run."""


class BatcherClosed(RuntimeError):
    """The model was unloaded or the server is stopping."""


@dataclass
class BatchTimings:
    queue_us: int
    compute_us: int
    batch_size: int


class Completed(NamedTuple, Generic[Result]):
    """A frame's result and how its batch went."""

    result: Result
    timings: BatchTimings


@dataclass
class PendingFrame(Generic[Payload, Result]):
    payload: Payload
    received: float  # perf_counter seconds
    expires: float | None  # perf_counter seconds, or None
    future: asyncio.Future[Completed[Result]] = field(repr=False)


class Batcher(Generic[Payload, Result]):
    """`runner(payloads)` gives one result per payload; it runs in a worker thread."""

    def __init__(
        self,
        name: str,
        runner: Callable[[list[Payload]], list[Result]],
        config: BatchingConfig,
        executor: Executor,
        on_batch: Callable[[int, float], None] | None = None,
        callers: Callable[[], int] = lambda: 2,
    ) -> None:
        self.name = name
        self._runner = runner
        self._config = config
        self._executor = executor
        self._queue: asyncio.Queue[PendingFrame[Payload, Result]] = asyncio.Queue(maxsize=config.queue_size)
        self._free_workers = config.workers
        self._worker_freed = asyncio.Event()
        self._on_batch = on_batch
        self._callers = callers
        self._inflight: set[asyncio.Task[None]] = set()
        # Recent model-run times: a frame whose budget is shorter than their median would be late
        # anyway, and computing it would make the frames behind it late too. A median, so one run
        # stretched by a pause (the process stopped, a page-in) does not count; and the estimate is
        # only trusted while runs keep confirming it, so frames are never locked out for good.
        self._recent_runs_s: deque[float] = deque(maxlen=RUN_HISTORY)
        self._last_run_at = 0.0
        self._collector = asyncio.create_task(self._collect(), name=f"batcher:{name}")

    def submit(self, payload: Payload, received: float, budget_s: float | None) -> asyncio.Future[Completed[Result]]:
        """Queue one frame; the future resolves to its Completed result."""
        future: asyncio.Future[Completed[Result]] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_retrieve)
        expires = received + budget_s if budget_s else None
        frame = PendingFrame(payload, received, expires, future)
        if self._free_workers and self._queue.empty() and self._callers() <= 1:
            self._free_workers -= 1  # nobody to batch with and a worker idle: run it now
            self._start([frame])
            return future
        try:
            self._queue.put_nowait(frame)
        except asyncio.QueueFull:
            raise BatchQueueFull(f"model '{self.name}' queue is full ({self._config.queue_size} frames)") from None
        return future

    async def _collect(self) -> None:
        max_batch = self._config.max_batch
        delay = self._config.max_queue_delay_us / 1e6
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            window_ends = loop.time() + (delay if self._callers() > 1 else 0.0)
            while not self._free_workers:  # frames arriving meanwhile join this batch
                self._worker_freed.clear()
                await self._worker_freed.wait()
            self._free_workers -= 1
            while len(batch) < max_batch:
                if not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                    continue
                remaining = window_ends - loop.time()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), remaining))
                except TimeoutError:
                    break
            self._start(batch)

    def _run_estimate(self, now: float) -> float:
        """How long the next run should take; 0 (skip nothing) until runs have shown it, or when none
        has run for a while (the estimate may be stale: only a run can correct it)."""
        if len(self._recent_runs_s) < MIN_RUNS_FOR_ESTIMATE or now - self._last_run_at > ESTIMATE_TRUSTED_S:
            return 0.0
        return statistics.median(self._recent_runs_s)

    def _start(self, batch: list[PendingFrame[Payload, Result]]) -> None:
        task = asyncio.create_task(self._run(batch))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _run(self, batch: list[PendingFrame[Payload, Result]]) -> None:
        try:
            started = time.perf_counter()
            live = []
            finish_by = started + self._run_estimate(started)
            for frame in batch:
                if frame.future.done():  # the caller gave up (cancelled call)
                    continue
                if frame.expires is not None and finish_by > frame.expires:
                    reason = "ran out while queued" if started > frame.expires else "is shorter than a model run"
                    frame.future.set_exception(FrameExpired(f"frame budget {reason}"))
                    continue
                live.append(frame)
            if not live:
                return
            loop = asyncio.get_running_loop()
            try:
                results = await loop.run_in_executor(self._executor, self._runner, [f.payload for f in live])
            except Exception as exc:  # noqa: BLE001 - a failed run fails its frames, not the batcher
                log.exception("model %s: batch of %d failed", self.name, len(live))
                for frame in live:
                    if not frame.future.done():
                        frame.future.set_exception(exc)
                return
            finished = time.perf_counter()
            compute_us = int((finished - started) * 1e6)
            self._recent_runs_s.append(finished - started)
            self._last_run_at = finished
            if self._on_batch is not None:
                self._on_batch(len(live), finished - started)
            for frame, result in zip(live, results):
                if not frame.future.done():
                    timings = BatchTimings(int((started - frame.received) * 1e6), compute_us, len(live))
                    frame.future.set_result(Completed(result, timings))
        finally:
            self._free_workers += 1
            self._worker_freed.set()

    async def close(self) -> None:
        self._collector.cancel()
        await asyncio.gather(self._collector, *self._inflight, return_exceptions=True)
        while not self._queue.empty():
            frame = self._queue.get_nowait()
            if not frame.future.done():
                closed = BatcherClosed(f"model '{self.name}' was unloaded or the server is stopping")
                frame.future.set_exception(closed)


def _retrieve(future: asyncio.Future[Completed[Any]]) -> None:
    """A frame whose caller is gone (a cancelled call) fails unread: mark its error seen, not 'never retrieved'."""
    if not future.cancelled():
        future.exception()
