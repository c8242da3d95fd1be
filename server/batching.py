"""Dynamic batching: concurrent requests for one model share one network call.

Each request submits its decoded images (k x H x W x 3 uint8) to its model's
batcher. One network thread per model takes, whenever the network is free,
everything queued up to ``max_batch`` images, runs the network once, and hands
each request its rows (through the event loop, which it never blocks). So there
is exactly one network call in flight per model, and while it runs, new
submissions pile up and go out together in the next one: under load, batches
grow by themselves; with an idle network a lone request goes at once.

The network thread never waits for a fuller batch, with one exception: with
``max_delay`` > 0, when it falls idle while more images for this model are being
decoded right now (``arriving``: a burst still coming in), it waits for them, at
most until the oldest queued image has waited ``max_delay`` seconds or
``max_batch`` images are queued. The default is 0: on a CPU any such wait costs
throughput (benchmarks/README.md, server_load.py).

The queue is bounded: a submission that would overflow it is refused at once
(503 upstream), never queued without limit. With ``batching=False`` every
submission runs on its own.

With several devices (`deepimage serve --devices cuda:0,cuda:1`) a model has one
batcher, network and thread per device, and a :class:`Dispatcher` in front that
sends each submission to the least busy one (fewest images queued or running).
"""
from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

__all__ = ["Batcher", "Dispatcher", "QueueFull", "worker_labels"]

log = logging.getLogger(__name__)


class QueueFull(Exception):
    """More images are waiting for this model than the server allows."""


@dataclass
class _Job:
    images: np.ndarray
    future: asyncio.Future
    queued_at: float = field(default_factory=time.perf_counter)


class Batcher:
    """Gathers images for one network and runs it in its own thread, one call at a time."""

    def __init__(self, name: str, run: Callable[[np.ndarray], np.ndarray], *,
                 max_batch: int = 64, max_delay: float = 0.0, max_queued: int = 1024,
                 batching: bool = True, metrics=None, device: str = "cpu"):
        self.name = name
        self.device = device  # the worker's label in metrics (cuda:0, or cpu#1 for a second cpu)
        self.run = run
        self.max_batch = max_batch
        self.max_delay = max_delay
        self.max_queued = max_queued
        self.batching = batching and max_batch > 1
        self.metrics = metrics
        # everything below is shared with the network thread: only under _lock
        self._lock = threading.Condition()
        self._jobs: collections.deque[_Job] = collections.deque()
        self._waiting = 0  # images in _jobs
        self._queued = 0  # images in _jobs plus those in the running call
        self._arriving = 0  # images being decoded for this model (only counted with max_delay)
        self._running: list[_Job] = []
        self._stopping = False
        self._loop: "asyncio.AbstractEventLoop | None" = None
        self._thread: "threading.Thread | None" = None

    @property
    def queued(self) -> int:
        """Images waiting for, or in, a network call."""
        return self._queued

    @property
    def lingers(self) -> bool:
        """Whether an idle network may wait (at most max_delay) for images being decoded."""
        return self.batching and self.max_delay > 0

    def start(self) -> None:
        """Start the network thread; results go back through the running event loop."""
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._work, name=f"deepimage-net-{self.name}",
                                        daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        """Fail what is queued or running; the thread ends after its current call."""
        with self._lock:
            self._stopping = True
            jobs = list(self._jobs) + self._running
            self._jobs.clear()
            self._lock.notify_all()
        for job in jobs:
            if not job.future.done():
                job.future.set_exception(RuntimeError("the server is shutting down"))

    def arriving(self, count: int) -> None:
        """``count`` images for this model started (+) or finished (-) decoding."""
        if not self.lingers:
            return
        with self._lock:
            self._arriving += count
            if count < 0:
                self._lock.notify()

    async def submit(self, images: np.ndarray) -> np.ndarray:
        """Embeddings of ``images`` (k x H x W x 3 uint8), k x D float32, in order."""
        count = len(images)
        future = asyncio.get_running_loop().create_future()
        with self._lock:
            if self._stopping:
                raise RuntimeError("the server is shutting down")
            if self._queued + count > self.max_queued:
                raise QueueFull(f"{self._queued} images are already waiting for {self.name}")
            self._jobs.append(_Job(images, future))
            self._waiting += count
            self._change(count)
            self._lock.notify()
        try:
            return await future
        except asyncio.CancelledError:  # timed out or the client left: dropped if still queued
            future.cancel()
            raise

    def _change(self, delta: int) -> None:
        """Under _lock: the queue depth (and its gauge, in order) changes by delta."""
        self._queued += delta
        if self.metrics is not None:  # the model's gauge adds up its devices' queues
            self.metrics.queue_depth.labels(self.name).inc(delta)
            self.metrics.device_queue_depth.labels(self.name, self.device).set(self._queued)

    def _take(self) -> list[_Job]:
        """Under _lock: the next batch, whole submissions, at most max_batch images unless
        one is bigger; cancelled submissions are dropped."""
        batch, size = [], 0
        while self._jobs:
            job = self._jobs[0]
            count = len(job.images)
            if job.future.done():  # cancelled while waiting
                self._jobs.popleft()
                self._waiting -= count
                self._change(-count)
                continue
            if batch and (not self.batching or size + count > self.max_batch):
                break
            batch.append(self._jobs.popleft())
            self._waiting -= count
            size += count
        return batch

    def _linger(self) -> None:
        """Under _lock, jobs queued: wait for images still being decoded, within max_delay."""
        deadline = self._jobs[0].queued_at + self.max_delay
        while (self._arriving > 0 and self._waiting < self.max_batch and self._jobs
               and not self._stopping):
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return
            self._lock.wait(remaining)

    def _next(self) -> "list[_Job] | None":
        """The next batch, once there is one; None when stopping."""
        with self._lock:
            while True:
                while not self._jobs and not self._stopping:
                    self._lock.wait()
                if self._stopping:
                    return None
                if self.lingers:
                    self._linger()
                batch = self._take()
                if batch:
                    self._running = batch
                    return batch

    def _work(self) -> None:
        """The network thread: one call at a time, back to back while work is queued."""
        while True:
            batch = self._next()
            if batch is None:
                return
            images = (batch[0].images if len(batch) == 1
                      else np.concatenate([job.images for job in batch]))
            vectors, error = None, None
            start = time.perf_counter()
            try:
                vectors = self.run(images)
            except Exception as exc:  # a failing call fails its requests, not the thread
                log.exception("The %s network failed on a batch of %d", self.name, len(images))
                error = exc
            seconds = time.perf_counter() - start
            if error is None and self.metrics is not None:
                self.metrics.batch_size.labels(self.name).observe(len(images))
                self.metrics.network_seconds.labels(self.name).observe(seconds)
                self.metrics.images.labels(self.name).inc(len(images))
                self.metrics.device_images.labels(self.name, self.device).inc(len(images))
                self.metrics.device_busy.labels(self.name, self.device).inc(seconds)
            with self._lock:
                self._running = []
                self._change(-len(images))
            try:
                self._loop.call_soon_threadsafe(_deliver, batch, vectors, error)
            except RuntimeError:  # the event loop is closed: nobody is waiting any more
                return


def worker_labels(devices: list[str]) -> list[str]:
    """A distinct label per worker: the device, numbered (cpu#0, cpu#1) when it repeats."""
    return [device if devices.count(device) == 1 else f"{device}#{devices[:i].count(device)}"
            for i, device in enumerate(devices)]


class Dispatcher:
    """One model's batchers, one per device: each submission goes to the least busy.

    "Least busy" is the fewest images queued or in a network call; among equals the
    turn rotates, so a steady trickle of lone requests alternates between devices.
    A request goes to one device whole (its rows come back in order); a batch is never
    split. Callers use it like a single :class:`Batcher`.
    """

    def __init__(self, batchers: list[Batcher]):
        if not batchers:
            raise ValueError("a Dispatcher needs at least one batcher")
        self.batchers = list(batchers)
        self._turn = 0

    @property
    def name(self) -> str:
        return self.batchers[0].name

    @property
    def queued(self) -> int:
        return sum(batcher.queued for batcher in self.batchers)

    def start(self) -> None:
        for batcher in self.batchers:
            batcher.start()

    async def stop(self) -> None:
        for batcher in self.batchers:
            await batcher.stop()

    def arriving(self, count: int) -> None:
        """Images being decoded may join any device's next call: every batcher is told."""
        for batcher in self.batchers:
            batcher.arriving(count)

    def pick(self) -> Batcher:
        """The least busy batcher (in the event loop: no lock needed for the turn)."""
        n = len(self.batchers)
        order = [self.batchers[(self._turn + i) % n] for i in range(n)]
        self._turn = (self._turn + 1) % n
        return min(order, key=lambda batcher: batcher.queued)

    async def submit(self, images: np.ndarray) -> np.ndarray:
        """Embeddings of ``images`` from the least busy device; QueueFull when all are full."""
        return await self.pick().submit(images)


def _deliver(batch: list[_Job], vectors: "np.ndarray | None", error: "Exception | None") -> None:
    """In the event loop: each request gets its rows (or the call's exception)."""
    offset = 0
    for job in batch:
        count = len(job.images)
        if not job.future.done():
            if error is not None:
                job.future.set_exception(error)
            else:
                job.future.set_result(vectors[offset:offset + count])
        offset += count
