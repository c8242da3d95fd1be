"""The dynamic batcher: gathering, order, switching off, bounded queue, failures."""
from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from orangecontrib.deepimage.server.batching import Batcher, QueueFull


def images(first: int, count: int) -> np.ndarray:
    """count 2x2 images whose pixels all equal their number (first, first+1, ...)."""
    values = np.arange(first, first + count, dtype=np.uint8)
    return np.broadcast_to(values[:, None, None, None], (count, 2, 2, 3)).copy()


class Network:
    """Records each call's batch size; the 'embedding' is the image's pixel value."""

    def __init__(self):
        self.calls = []
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.gate.wait(10)
        self.calls.append(len(batch))
        return batch[:, 0, 0, :1].astype(np.float32)


def run(coroutine):
    return asyncio.run(coroutine)


@pytest.mark.parametrize("batching, calls", [(True, [10]), (False, [1] * 10)])
def test_concurrent_requests_share_one_call_unless_switched_off(batching, calls):
    network = Network()

    async def main():
        batcher = Batcher("net", network, max_batch=64, max_delay=0.05, batching=batching)
        batcher.start()
        try:
            results = await asyncio.gather(*(batcher.submit(images(i, 1)) for i in range(10)))
        finally:
            await batcher.stop()
        return results

    results = run(main())
    assert network.calls == calls
    assert [int(r[0, 0]) for r in results] == list(range(10))  # each got its own row


def test_batches_never_exceed_max_batch_and_multi_image_submissions_stay_whole():
    network = Network()

    async def main():
        batcher = Batcher("net", network, max_batch=4, max_delay=0.05)
        batcher.start()
        try:
            return await asyncio.gather(batcher.submit(images(0, 3)),
                                        batcher.submit(images(3, 3)),
                                        batcher.submit(images(6, 1)))
        finally:
            await batcher.stop()

    first, second, third = run(main())
    assert network.calls == [3, 4]
    assert first[:, 0].tolist() == [0, 1, 2] and second[:, 0].tolist() == [3, 4, 5]
    assert third[:, 0].tolist() == [6]


def test_the_queue_is_bounded():
    network = Network()
    network.gate.clear()  # the network is stuck: work piles up

    async def main():
        batcher = Batcher("net", network, max_batch=2, max_delay=0, max_queued=5)
        batcher.start()
        waiting = [asyncio.ensure_future(batcher.submit(images(0, 2))) for _ in range(2)]
        await asyncio.sleep(0.01)
        assert batcher.queued == 4
        with pytest.raises(QueueFull):
            await batcher.submit(images(0, 2))
        network.gate.set()
        await asyncio.gather(*waiting)
        assert batcher.queued == 0
        await batcher.stop()

    run(main())


def test_a_failing_call_fails_its_requests_and_the_worker_goes_on():
    failures = iter([True, False])

    def flaky(batch):
        if next(failures):
            raise RuntimeError("boom")
        return batch[:, 0, 0, :1].astype(np.float32)

    async def main():
        batcher = Batcher("net", flaky, max_batch=8, max_delay=0)
        batcher.start()
        try:
            with pytest.raises(RuntimeError, match="boom"):
                await batcher.submit(images(0, 1))
            return await batcher.submit(images(5, 1))
        finally:
            await batcher.stop()

    assert run(main())[0, 0] == 5


def test_a_cancelled_request_is_dropped_before_the_network():
    network = Network()
    network.gate.clear()

    async def main():
        batcher = Batcher("net", network, max_batch=1, max_delay=0)
        batcher.start()
        first = asyncio.ensure_future(batcher.submit(images(0, 1)))
        await asyncio.sleep(0.01)  # the first call is running (stuck at the gate)
        second = asyncio.ensure_future(batcher.submit(images(1, 1)))
        await asyncio.sleep(0.01)
        second.cancel()  # e.g. the request timed out
        network.gate.set()
        await first
        await asyncio.sleep(0.05)
        assert batcher.queued == 0
        await batcher.stop()

    run(main())
    assert network.calls == [1]
