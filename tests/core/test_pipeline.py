"""run_steps, the one loop that drives every runner (local in the caller's thread,
remote with several steps in flight)."""
import threading
import time

import numpy as np
import pytest

from orangecontrib.deepimage.core.cancel import Cancelled
from orangecontrib.deepimage.core.images import ImageError
from orangecontrib.deepimage.core.pipeline import Prepared, StepRunner, gather, run_steps


def prepare(source: str) -> Prepared:
    if source.startswith("bad"):
        raise ImageError("not an image")
    return Prepared.decoded(np.full((2, 2, 3), int(source), np.uint8))


class Mean(StepRunner):
    """Vectors are the image's value; later steps finish first when several are in flight."""

    def __init__(self, in_flight):
        self.in_flight = in_flight
        self.threads, self.events = set(), []

    def run_step(self, step, done):
        self.threads.add(threading.get_ident())
        if self.in_flight > 1:
            time.sleep(0.05 / (1 + step.indices[0]) if step.indices else 0)
        vectors = np.array([[img[0, 0, 0]] for img in step.images], np.float32)
        return step.result(vectors, done, 1)

    def start(self):
        self.events.append("start")

    def stop(self):
        self.events.append("stop")


@pytest.mark.parametrize("in_flight", [1, 3])
def test_batches_come_in_input_order_with_skips_and_progress(in_flight):
    sources = [str(i) for i in range(20)] + ["bad"] + [str(i) for i in range(20, 30)]
    runner, seen = Mean(in_flight), []
    result = gather(sources, "m", lambda: 1,
                    run_steps(sources, prepare, runner, 4, 2, lambda d, n: seen.append((d, n))))
    assert result.full()[:, 0][:20].tolist() == list(range(20))
    assert result.full()[21:, 0].tolist() == list(range(20, 30))
    assert [s.index for s in result.skipped] == [20]
    assert seen[-1] == (31, 31) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert runner.events == ["start", "stop"]
    if in_flight == 1:  # a local network runs in the caller's thread
        assert runner.threads == {threading.get_ident()}


@pytest.mark.parametrize("in_flight", [1, 3])
def test_a_cancel_stops_the_run_and_the_runner(in_flight):
    sources = [str(i) for i in range(40)]
    runner, calls = Mean(in_flight), []

    def should_stop():
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(Cancelled):
        list(run_steps(sources, prepare, runner, 4, 2, should_stop=should_stop))
    assert runner.events == ["start", "stop"]
