"""Dynamic batching: concurrent requests for one model share one network call.

Each request submits its decoded images (k x H x W x 3 uint8). A worker task per
model gathers submissions until it has ``max_batch`` images or the oldest one has
waited ``max_delay`` seconds, runs the network once in its own thread (one call
at a time per model, so the event loop stays free) and hands each request its
rows. While a call runs, new submissions pile up and go out together in the next
one, so under load batches fill up by themselves. The queue is bounded: a
submission that would overflow it is refused at once (503 upstream), never queued
without limit. With ``batching=False`` every submission runs on its own.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

__all__ = ["Batcher", "QueueFull"]

log = logging.getLogger(__name__)


class QueueFull(Exception):
    """More images are waiting for this model than the server allows."""


@dataclass
class _Job:
    images: np.ndarray
    future: asyncio.Future
    queued_at: float = field(default_factory=time.perf_counter)


class Batcher:
    """Gathers images for one network and runs it in a worker thread."""

    def __init__(self, name: str, run: Callable[[np.ndarray], np.ndarray], *,
                 max_batch: int = 64, max_delay: float = 0.005, max_queued: int = 1024,
                 batching: bool = True, metrics=None):
        self.name = name
        self.run = run
        self.max_batch = max_batch
        self.max_delay = max_delay
        self.max_queued = max_queued
        self.batching = batching and max_batch > 1
        self.metrics = metrics
        self._jobs: collections.deque[_Job] = collections.deque()
        self._queued = 0  # images in _jobs plus those in the running call
        self._wakeup: "asyncio.Event | None" = None
        self._task: "asyncio.Task | None" = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=f"deepimage-net-{name}")

    @property
    def queued(self) -> int:
        """Images waiting for, or in, a network call."""
        return self._queued

    def start(self) -> None:
        """Start the worker task on the running event loop."""
        self._wakeup = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._work(),
                                                            name=f"batcher-{self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        for job in self._jobs:
            if not job.future.done():
                job.future.set_exception(RuntimeError("the server is shutting down"))
        self._jobs.clear()
        self._thread.shutdown(wait=False, cancel_futures=True)

    async def submit(self, images: np.ndarray) -> np.ndarray:
        """Embeddings of ``images`` (k x H x W x 3 uint8), k x D float32, in order."""
        count = len(images)
        if self._queued + count > self.max_queued:
            raise QueueFull(f"{self._queued} images are already waiting for {self.name}")
        future = asyncio.get_running_loop().create_future()
        self._jobs.append(_Job(images, future))
        self._change(count)
        self._wakeup.set()
        try:
            return await future
        except asyncio.CancelledError:  # timed out or the client left: drop it if still queued
            future.cancel()
            raise

    def _change(self, delta: int) -> None:
        self._queued += delta
        if self.metrics is not None:
            self.metrics.queue_depth.labels(self.name).set(self._queued)

    def _take(self) -> list[_Job]:
        """The next batch: whole submissions, at most max_batch images unless one is bigger."""
        batch, size = [], 0
        while self._jobs:
            job = self._jobs[0]
            if job.future.done():  # cancelled while waiting
                self._jobs.popleft()
                self._change(-len(job.images))
                continue
            if batch and (not self.batching or size + len(job.images) > self.max_batch):
                break
            batch.append(self._jobs.popleft())
            size += len(job.images)
            if not self.batching:
                break
        return batch

    async def _gather_more(self) -> None:
        """Wait until max_batch images are queued or the oldest job is max_delay old."""
        if not self.batching or not self._jobs:
            return
        deadline = self._jobs[0].queued_at + self.max_delay
        while sum(len(j.images) for j in self._jobs) < self.max_batch:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except asyncio.TimeoutError:
                return

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._jobs:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            await self._gather_more()
            batch = self._take()
            if not batch:
                continue
            images = (batch[0].images if len(batch) == 1
                      else np.concatenate([job.images for job in batch]))
            start = time.perf_counter()
            try:
                vectors = await loop.run_in_executor(self._thread, self.run, images)
            except Exception as exc:  # a failing call fails its requests, not the worker
                log.exception("The %s network failed on a batch of %d", self.name, len(images))
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(exc)
            else:
                if self.metrics is not None:
                    self.metrics.batch_size.labels(self.name).observe(len(images))
                    self.metrics.network_seconds.labels(self.name).observe(
                        time.perf_counter() - start)
                    self.metrics.images.labels(self.name).inc(len(images))
                offset = 0
                for job in batch:
                    rows = vectors[offset:offset + len(job.images)]
                    offset += len(job.images)
                    if not job.future.done():
                        job.future.set_result(rows)
            finally:
                self._change(-len(images))
