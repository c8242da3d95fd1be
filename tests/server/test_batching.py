"""The dynamic batcher: gathering, order, switching off, waiting, bounded queue, failures."""
from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from orangecontrib.deepimage.server.batching import Batcher, QueueFull


def images(first: int, count: int) -> np.ndarray:
    """count 2x2 images whose pixels all equal their number (first, first+1, ...)."""
    values = np.arange(first, first + count, dtype=np.uint8)
    return np.broadcast_to(values[:, None, None, None], (count, 2, 2, 3)).copy()


class Network:
    """Records each call's batch size; the 'embedding' is the image's pixel value.

    ``gate`` cleared holds every call until it is set; ``entered`` is set when a call
    has started (so a test knows the network is busy).
    """

    def __init__(self):
        self.calls = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.entered.set()
        self.gate.wait(10)
        self.calls.append(len(batch))
        return batch[:, 0, 0, :1].astype(np.float32)


def run(coroutine):
    return asyncio.run(coroutine)


async def busy(batcher: Batcher, network: Network) -> asyncio.Future:
    """Submit one image (number 255) and return once the network is running it, held
    at its gate: what is submitted next waits for, and gathers behind, this call."""
    network.gate.clear()
    first = asyncio.ensure_future(batcher.submit(images(255, 1)))
    assert await asyncio.to_thread(network.entered.wait, 10)
    return first


async def queued(batcher: Batcher, count: int) -> None:
    """Until ``count`` images wait for, or are in, a network call."""
    while batcher.queued < count:
        await asyncio.sleep(0.001)


@pytest.mark.parametrize("batching, calls", [(True, [1, 10]), (False, [1] * 11)])
def test_requests_that_come_during_a_call_share_the_next_unless_switched_off(batching, calls):
    network = Network()

    async def main():
        batcher = Batcher("net", network, max_batch=64, batching=batching)
        batcher.start()
        try:
            first = await busy(batcher, network)
            rest = [asyncio.ensure_future(batcher.submit(images(i, 1))) for i in range(10)]
            await queued(batcher, 11)
            network.gate.set()
            return await first, await asyncio.gather(*rest)
        finally:
            await batcher.stop()

    first, results = run(main())
    assert network.calls == calls  # 11 requests, 2 network calls when batching
    assert int(first[0, 0]) == 255
    assert [int(r[0, 0]) for r in results] == list(range(10))  # each got its own row


def test_batches_never_exceed_max_batch_and_multi_image_submissions_stay_whole():
    network = Network()

    async def main():
        batcher = Batcher("net", network, max_batch=4)
        batcher.start()
        try:
            held = await busy(batcher, network)
            jobs = [asyncio.ensure_future(batcher.submit(images(0, 3))),
                    asyncio.ensure_future(batcher.submit(images(3, 3))),
                    asyncio.ensure_future(batcher.submit(images(6, 1)))]
            await queued(batcher, 8)
            network.gate.set()
            await held
            return await asyncio.gather(*jobs)
        finally:
            await batcher.stop()

    first, second, third = run(main())
    assert network.calls == [1, 3, 4]
    assert first[:, 0].tolist() == [0, 1, 2] and second[:, 0].tolist() == [3, 4, 5]
    assert third[:, 0].tolist() == [6]


def test_a_lone_request_on_an_idle_network_is_not_held_for_max_delay():
    network = Network()

    async def main():
        # a minute of allowed delay: the old design (wait for company up to max_delay
        # whenever a batch is not full) held this request for all of it
        batcher = Batcher("net", network, max_batch=64, max_delay=60)
        batcher.start()
        try:
            return await asyncio.wait_for(batcher.submit(images(7, 1)), 30)
        finally:
            await batcher.stop()

    assert int(run(main())[0, 0]) == 7
    assert network.calls == [1]


def test_an_idle_network_waits_for_images_still_being_decoded_with_max_delay():
    network = Network()

    async def main():
        batcher = Batcher("net", network, max_batch=64, max_delay=60)
        batcher.start()
        try:
            batcher.arriving(1)  # two images are being decoded ...
            batcher.arriving(1)
            first = asyncio.ensure_future(batcher.submit(images(0, 1)))
            await queued(batcher, 1)
            await asyncio.sleep(0.05)
            assert network.calls == []  # ... so the first one waits for them
            rest = [asyncio.ensure_future(batcher.submit(images(i, 1))) for i in (1, 2)]
            await queued(batcher, 3)
            batcher.arriving(-1)
            batcher.arriving(-1)
            return await asyncio.wait_for(asyncio.gather(first, *rest), 30)
        finally:
            await batcher.stop()

    results = run(main())
    assert network.calls == [3]
    assert [int(r[0, 0]) for r in results] == [0, 1, 2]


def test_without_max_delay_nothing_waits_for_images_being_decoded():
    network = Network()

    async def main():
        batcher = Batcher("net", network, max_batch=64, max_delay=0)
        batcher.start()
        try:
            batcher.arriving(1)  # never finishes decoding
            return await asyncio.wait_for(batcher.submit(images(3, 1)), 30)
        finally:
            await batcher.stop()

    assert int(run(main())[0, 0]) == 3
    assert network.calls == [1]


def test_the_network_runs_in_its_own_thread_one_call_at_a_time():
    threads, active, most = set(), [0], [0]
    lock = threading.Lock()

    def network(batch):
        with lock:
            threads.add(threading.get_ident())
            active[0] += 1
            most[0] = max(most[0], active[0])
        time.sleep(0.002)
        with lock:
            active[0] -= 1
        return batch[:, 0, 0, :1].astype(np.float32)

    async def main():
        batcher = Batcher("net", network, max_batch=2)
        batcher.start()
        try:
            await asyncio.gather(*(batcher.submit(images(i, 1)) for i in range(20)))
        finally:
            await batcher.stop()

    run(main())
    assert threading.get_ident() not in threads and len(threads) == 1
    assert most[0] == 1


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
