"""Several network workers, one per device (`deepimage serve --devices`): the choice of
devices, routing to the least busy worker, and a live `--devices cpu,cpu` server under
concurrent load (both workers work, the vectors are those of one device, /metrics says
how much each device did)."""
from __future__ import annotations

import asyncio
import re
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from pydantic import ValidationError

from orangecontrib.deepimage.server.batching import (Batcher, Dispatcher, QueueFull,
                                                     worker_labels)
from orangecontrib.deepimage.server.config import ConfigError, Settings

from live_server import LiveServer
from server_helpers import jpeg


class Network:
    """A fake network that records its calls; ``gate`` cleared holds them (device busy)."""

    def __init__(self, value: float):
        self.value = value
        self.calls = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.entered.set()
        self.gate.wait(10)
        self.calls.append(len(batch))
        return np.full((len(batch), 1), self.value, np.float32)


def one_image() -> np.ndarray:
    return np.zeros((1, 2, 2, 3), np.uint8)


def test_each_submission_goes_to_the_least_busy_device():
    async def scenario():
        first, second = Network(0), Network(1)
        dispatcher = Dispatcher([Batcher("net", first, max_batch=4, device="cuda:0"),
                                 Batcher("net", second, max_batch=4, device="cuda:1")])
        dispatcher.start()
        try:
            # idle devices take turns
            answers = [float((await dispatcher.submit(one_image()))[0, 0]) for _ in range(4)]
            assert answers == [0, 1, 0, 1]
            # device 0 busy (held mid-call with one image): the next three go to device 1,
            # whatever the turn says, while device 0's queue is longer
            first.gate.clear()
            first.entered.clear()
            held = asyncio.ensure_future(dispatcher.batchers[0].submit(one_image()))
            assert await asyncio.to_thread(first.entered.wait, 10)
            for _ in range(3):
                assert float((await dispatcher.submit(one_image()))[0, 0]) == 1
            first.gate.set()
            assert float((await held)[0, 0]) == 0
        finally:
            first.gate.set()
            await dispatcher.stop()
        assert (sum(first.calls), sum(second.calls)) == (3, 5)
    asyncio.run(scenario())


def test_a_full_device_sends_work_to_another_and_only_all_full_is_refused():
    async def scenario():
        nets = [Network(0), Network(1)]
        dispatcher = Dispatcher([Batcher("net", net, max_batch=1, max_queued=2, device=d)
                                 for net, d in zip(nets, ("cpu#0", "cpu#1"))])
        dispatcher.start()
        for net in nets:
            net.gate.clear()
        try:
            waiting = [asyncio.ensure_future(dispatcher.submit(one_image())) for _ in range(4)]
            while dispatcher.queued < 4:
                await asyncio.sleep(0.001)
            assert [b.queued for b in dispatcher.batchers] == [2, 2]
            with pytest.raises(QueueFull):
                await dispatcher.submit(one_image())
            for net in nets:
                net.gate.set()
            values = sorted(float(v[0, 0]) for v in await asyncio.gather(*waiting))
            assert values == [0, 0, 1, 1]
        finally:
            for net in nets:
                net.gate.set()
            await dispatcher.stop()
    asyncio.run(scenario())


def test_worker_labels_number_a_repeated_device():
    assert worker_labels(["cuda:0", "cuda:1"]) == ["cuda:0", "cuda:1"]
    assert worker_labels(["cpu", "cpu"]) == ["cpu#0", "cpu#1"]
    assert worker_labels(["cpu"]) == ["cpu"]


def test_devices_option_and_defaults(monkeypatch):
    assert Settings(devices="cpu, CPU").devices == ["cpu", "cpu"]
    assert Settings(devices="cpu,cpu").worker_devices() == ["cpu", "cpu"]
    with pytest.raises(ValidationError, match="'tpu' is not a device"):
        Settings(devices="cpu,tpu")
    # no GPU here: the default is one CPU worker, and a GPU named is a clear error
    assert Settings().worker_devices() == ["cpu"]
    assert Settings(device="cpu").worker_devices() == ["cpu"]
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="No CUDA GPU is usable"):
            Settings(devices="cuda:0").worker_devices()
    # a computer with two GPUs (which cannot exist here): every visible GPU by default
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert Settings().worker_devices() == ["cuda:0", "cuda:1"]
    assert Settings(device="cuda").worker_devices() == ["cuda:0", "cuda:1"]
    assert Settings(device="cpu").worker_devices() == ["cpu"]
    assert Settings(devices="cuda:1").worker_devices() == ["cuda:1"]
    with pytest.raises(ConfigError, match=r"no GPU cuda:2 here: this computer shows 2 GPU"):
        Settings(devices="cuda:0,cuda:2").worker_devices()


def test_the_onnx_provider_is_pinned_to_the_gpu_named(monkeypatch):
    onnxruntime = pytest.importorskip("onnxruntime")
    from orangecontrib.deepimage.core.onnx import onnx_providers
    monkeypatch.setattr(onnxruntime, "get_available_providers",
                        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert onnx_providers("cuda:1") == [("CUDAExecutionProvider", {"device_id": 1}),
                                        "CPUExecutionProvider"]
    assert onnx_providers("cuda") == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert onnx_providers("cpu") == ["CPUExecutionProvider"]


@pytest.fixture(scope="module")
def two_cpu_server(tmp_path_factory):
    """`deepimage serve --devices cpu,cpu` (real SqueezeNet weights) on 127.0.0.1."""
    server = LiveServer(tmp_path_factory.mktemp("devices"), "--models", "squeezenet",
                        "--devices", "cpu,cpu").wait_ready()
    try:
        yield server.url
    finally:
        server.stop()


def _device_images(metrics: str) -> dict[str, float]:
    pattern = re.compile(r'^deepimage_device_images_embedded_total\{device="([^"]+)",'
                         r'model="squeezenet"\} (\S+)$', re.M)
    found = {device: float(value) for device, value in pattern.findall(metrics)}
    if not found:  # label order as the client library writes it
        pattern = re.compile(r'^deepimage_device_images_embedded_total\{model="squeezenet",'
                             r'device="([^"]+)"\} (\S+)$', re.M)
        found = {device: float(value) for device, value in pattern.findall(metrics)}
    return found


def test_two_cpu_workers_share_concurrent_load_and_agree_with_one(two_cpu_server, client):
    url = two_cpu_server
    models = httpx.get(f"{url}/v1/models").json()["models"]
    assert models[0]["devices"] == ["cpu", "cpu"]
    before = _device_images(httpx.get(f"{url}/metrics").text)
    payloads = [[jpeg(500 + 2 * i), jpeg(501 + 2 * i)] for i in range(24)]

    def post(images: list[bytes]) -> np.ndarray:
        response = httpx.post(f"{url}/v1/embed/squeezenet", timeout=120,
                              files=[("images", data) for data in images])
        assert response.status_code == 200, response.text
        return np.array([r["embedding"] for r in response.json()["results"]], np.float32)

    with ThreadPoolExecutor(8) as pool:  # 8 clients at once
        vectors = np.concatenate(list(pool.map(post, payloads)))
    after = _device_images(httpx.get(f"{url}/metrics").text)
    done = {device: after[device] - before.get(device, 0) for device in after}
    assert set(done) == {"cpu#0", "cpu#1"}
    assert sum(done.values()) == 48
    assert min(done.values()) >= 8, done  # both workers did a real share of the work

    # one device (the session's one-worker server) gives the same vectors
    one = client.post("/v1/embed/squeezenet",
                      files=[("images", data) for data in payloads[0] + payloads[1]])
    single = np.array([r["embedding"] for r in one.json()["results"]], np.float32)
    np.testing.assert_allclose(vectors[:4], single, rtol=1e-4, atol=1e-5)
