"""The refit's own process: same answers as in a thread, embeddings sent once per input,
the newest request wins, a thread when no process can run, a clean stop."""
import multiprocessing
import threading
import time

import numpy as np
import pytest

from orangecontrib.deepimage.core.labelling import LabellingError
from orangecontrib.deepimage.core.labelling.refit import refit
from orangecontrib.deepimage.core.labelling.worker import RefitWorker, Superseded


@pytest.fixture(scope="module")
def task():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 16))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
    labels = [None] * len(X)
    for i in range(40):
        labels[i] = "ab"[y[i]]
    return X, labels


@pytest.fixture(scope="module")
def worker():
    worker = RefitWorker()
    yield worker
    worker.close()


def test_the_process_answers_as_the_thread_does(worker, task):
    X, labels = task
    remote = worker.refit(X, 1, labels, ["a", "b"], 15, with_scores=True)
    assert worker.in_process and worker.fallback == ""
    local = refit(X, labels, ["a", "b"], 15, with_scores=True)
    np.testing.assert_allclose(remote.probabilities, local.probabilities)
    assert remote.suggestions == local.suggestions and remote.issues == local.issues
    assert remote.accuracy == local.accuracy
    np.testing.assert_allclose(remote.scores, local.scores, equal_nan=True)
    np.testing.assert_allclose(remote.quick.predict_proba(X), local.probabilities)


def test_embeddings_go_once_per_input(worker, task, monkeypatch):
    X, labels = task
    worker.refit(X, 1, labels, ["a", "b"], 5)
    sent = []
    original = worker._send_matrix
    monkeypatch.setattr(worker, "_send_matrix", lambda *a: (sent.append(a[1]), original(*a)))
    more = list(labels)
    more[100] = "a"
    assert worker.refit(X, 1, more, ["a", "b"], 5).labels[100] == "a"
    assert sent == []                       # same input: only the labels travel
    other = X[::-1].copy()
    result = worker.refit(other, 2, more, ["a", "b"], 5)
    assert sent == [2]
    np.testing.assert_allclose(result.probabilities,
                               refit(other, more, ["a", "b"], 5).probabilities)


def test_the_newest_request_wins(worker, task):
    X, labels = task
    worker.refit(X, 1, labels, ["a", "b"], 5)
    answers = {}

    def ask(name, given):
        try:
            answers[name] = worker.refit(X, 1, given, ["a", "b"], 5).labels
        except Superseded:
            answers[name] = "superseded"
    versions = []
    for k in range(4):
        given = list(labels)
        given[200 + k] = "b"
        versions.append(given)
    threads = [threading.Thread(target=ask, args=(k, v)) for k, v in enumerate(versions)]
    for thread in threads:
        thread.start()
        time.sleep(0.01)
    for thread in threads:
        thread.join(60)
    assert answers[3] == tuple(versions[3])
    # an older request gets its own answer only if it finished before the next came
    assert all(answers[k] in ("superseded", tuple(versions[k])) for k in range(3))


def test_the_process_loop_answers_only_the_last_refit_it_was_sent(task):
    """serve() itself, on a pipe filled before it starts: requests 1 and 2 are
    superseded unanswered, 3 gets its result; then it stops when told."""
    import multiprocessing
    from orangecontrib.deepimage.core.labelling.worker import CHUNK_ROWS, serve
    X, labels = task
    ours, theirs = multiprocessing.Pipe()
    ours.send(("data", 7, X.shape, X.dtype.str))
    for start in range(0, len(X), CHUNK_ROWS):
        ours.send_bytes(memoryview(X[start:start + CHUNK_ROWS]).cast("B"))
    for request in (1, 2, 3):
        ours.send(("refit", request, 7, (tuple(labels), ("a", "b"), request, 0, False)))
    server = threading.Thread(target=serve, args=(theirs,), daemon=True)
    server.start()
    answers = [ours.recv() if ours.poll(60) else None for _ in range(3)]
    ours.send(("stop",))
    server.join(60)
    assert [(kind, i) for kind, i, _ in answers] == \
        [("superseded", 1), ("superseded", 2), ("done", 3)]
    assert len(answers[2][2].suggestions) == 3 and not server.is_alive()


def test_a_none_token_is_a_token_too(task):
    """A new worker holds no embeddings: token None sends them like any other."""
    X, labels = task
    fresh = RefitWorker()
    try:
        result = fresh.refit(X, None, labels, ["a", "b"], 5)
        assert fresh.in_process
    finally:
        fresh.close()
    np.testing.assert_allclose(result.probabilities,
                               refit(X, labels, ["a", "b"], 5).probabilities)


def test_cancelled_and_failed_requests(worker, task):
    X, labels = task
    asked = worker._latest
    with pytest.raises(Superseded):          # cancelled before it was sent: not sent
        worker.refit(X, 1, labels, ["a", "b"], 5, cancelled=lambda: True)
    assert worker._latest == asked
    calls = []                              # cancelled once sent: Superseded, even when
    with pytest.raises(Superseded):          # the process answers before the next look
        worker.refit(X, 1, labels, ["a", "b"], 5,
                     cancelled=lambda: calls.append(1) or len(calls) > 1)
    assert worker._latest == asked + 1
    with pytest.raises(LabellingError, match="n must be"):  # raised in the process
        worker.refit(X, 1, labels, ["a", "b"], -1)
    assert worker.in_process                # a failed refit is not a failed process
    assert worker.refit(X, 1, labels, ["a", "b"], 3).suggestions


def test_a_thread_when_no_process_starts_or_it_dies(task, monkeypatch):
    X, labels = task
    broken = RefitWorker()
    monkeypatch.setattr(broken, "_start", lambda: (_ for _ in ()).throw(OSError("no")))
    result = broken.refit(X, 1, labels, ["a", "b"], 5)
    assert len(result.suggestions) == 5 and "OSError: no" in broken.fallback
    assert not broken.in_process
    dying = RefitWorker()
    dying.refit(X, 1, labels, ["a", "b"], 5)
    dying._process.kill()
    dying._process.join(10)
    assert dying.refit(X, 1, labels, ["a", "b"], 5).suggestions == result.suggestions
    assert "failed" in dying.fallback and dying._process is None


def test_close_stops_the_process(task):
    X, labels = task
    worker = RefitWorker()
    worker.refit(X, 1, labels, ["a", "b"], 5)
    process = worker._process
    worker.close()
    assert not process.is_alive() and process.exitcode == 0
    assert worker.refit(X, 1, labels, ["a", "b"], 5).suggestions  # then in this thread
    assert not worker.in_process
    RefitWorker().close()                   # never started: nothing to stop
    quick = RefitWorker()
    quick.refit(X, 1, labels, ["a", "b"], 5)
    process = quick._process
    quick.close(wait=False)                 # the widget's way: returns at once
    stoppers = [t for t in threading.enumerate() if t.name == "refit-stop"]
    for stopper in stoppers:                # the background thread reaps the process
        stopper.join(30)
    assert stoppers and process.exitcode == 0


class _ClosedWhileStarting(RefitWorker):
    """close() runs (on another thread) while _start is under way, before the new
    process is stored: close's own stop finds nothing to stop."""

    def __init__(self):
        super().__init__()
        self.started = []

    def _start(self):
        closer = threading.Thread(target=self.close)
        closer.start()
        closer.join(30)
        super()._start()
        self.started.append(self._process)


def test_close_while_the_process_starts_leaves_none_running(task):
    warming = _ClosedWhileStarting()
    warming.warm_up()
    for thread in [t for t in threading.enumerate() if t.name == "refit-warm-up"]:
        thread.join(60)
    assert len(warming.started) == 1 and warming._process is None
    assert not warming.started[0].is_alive()
    assert warming.started[0] not in multiprocessing.active_children()
    X, labels = task
    refitting = _ClosedWhileStarting()
    with pytest.raises(Superseded):         # the refit that started it is not answered
        refitting.refit(X, 1, labels, ["a", "b"], 5)
    assert len(refitting.started) == 1 and not refitting.started[0].is_alive()
    assert refitting.refit(X, 1, labels, ["a", "b"], 5).suggestions  # then in this thread
    assert len(refitting.started) == 1


def test_a_refit_that_comes_after_close_starts_no_process(task):
    """A refit past the fallback check when close() runs: Superseded, no process."""
    X, labels = task
    worker = RefitWorker()
    started = []
    worker._start = lambda: started.append(1)
    worker.close()
    with pytest.raises(Superseded):
        worker._remote(X, 1, ((), (), 5, 0, False), lambda: False)
    assert started == [] and worker._process is None
